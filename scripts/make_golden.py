"""Build tests/golden/ from fetched git snapshots of three published sweeps (run once by hand; tests never do).

    python scripts/make_golden.py --epoch GITDIR --porian GITDIR --olmo GITDIR [--out tests/golden]

Each GITDIR is a bare git directory (e.g. from `git clone --bare`); files are read with `git show HEAD:path`,
so no work tree is needed. Only numbers are written: one CSV of runs per sweep, plus a JSON sidecar naming the
source repository, path and commit, what N counts, and the published figures the tests check against.

Porian et al.'s per-budget points exist only inside a pandas pickle, and unpickling runs code, so the file's
sha256 is checked against the one we inspected before it is loaded.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd

EPOCH_REPO = "epoch-research/analyzing-chinchilla"
PORIAN_REPO = "formll/resolving-scaling-law-discrepancies"
OLMO_REPO = "allenai/OLMo-ladder"
PORIAN_PICKLE = "data/summary_df.pickle.xz"
PORIAN_SHA256 = "afbf07ec92d23182f56a44dd43599f2a7e9716fd70492fbc0a35f6093272b74f"

# Porian et al. 2024, Table 2 / Fig. 1, RefinedWeb: (their config key, our file name, published a, what N and
# the loss are). Config keys are (dataset, hparams, warmup, decay, param count, loss) as in their configs.py.
PORIAN_SETTINGS = [
    (("rw", "base", "long", "kaplan", "kaplan", "train"), "porian_kaplan", 0.835,
     "non-embedding parameters (no head, no embedding); C = 6·N·D in the same count; smoothed train loss"),
    (("rw", "base", "long", "kaplan", "standard", "val"), "porian_head", 0.707,
     "parameters with the output head (embedding lookup excluded); C = 6·N·D; validation loss"),
    (("rw", "base", "short", "kaplan", "standard", "val"), "porian_warmup", 0.602,
     "parameters with the output head; C = 6·N·D; validation loss"),
    (("rw", "base", "short", "chinchilla", "standard", "val"), "porian_cosine", 0.572,
     "parameters with the output head; C = 6·N·D; validation loss"),
    (("rw", "tuned", "short", "const", "standard", "val"), "porian_tuned", 0.497,
     "parameters with the output head; C = 6·N·D; validation loss"),
]

# OLMo ladder (Bhagia et al. 2024), src/scripts/paper/configs/final.json: the 16 runs its step-1 law is fitted on.
OLMO_SIZES = {"190M": 190354176, "370M": 371262464, "760M": 758220288, "1B": 1279395840, "3B": 3169537280}
OLMO_FIT_SIZES = ("190M", "370M", "760M", "1B")
OLMO_FIT_MULTIPLIERS = ("1xC", "2xC", "5xC", "10xC")
OLMO_MULTIPLIERS = ("0.5xC", "1xC", "2xC", "5xC", "10xC")
OLMO_LOSS_KEY = "eval/c4_en-validation/CrossEntropyLoss"
OLMO_MOVING_AVG = 5  # the paper's --moving_avg 5: the loss is the mean of the last 5 evaluations


def git_show(gitdir: str, path: str) -> bytes:
    return subprocess.run(["git", "--git-dir", gitdir, "show", f"HEAD:{path}"], check=True,
                          capture_output=True).stdout


def git_commit(gitdir: str) -> str:
    return subprocess.run(["git", "--git-dir", gitdir, "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()


def write(out: Path, name: str, rows: pd.DataFrame, sidecar: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rows.to_csv(out / f"{name}.csv", index=False, float_format="%.10g")
    (out / f"{name}.json").write_text(json.dumps(sidecar, indent=2) + "\n")
    print(f"{name}: {len(rows)} rows")


def convert_epoch(gitdir: str, out: Path) -> None:
    path = "data/svg_extracted_data.csv"
    raw = pd.read_csv(io.BytesIO(git_show(gitdir, path)))
    raw = raw[["Model Size", "Training FLOP", "loss"]].dropna().reset_index(drop=True)
    n, c, loss = raw["Model Size"], raw["Training FLOP"], raw["loss"]
    # Epoch's data_analysis.ipynb keeps losses strictly below the 5th-highest (nr_of_models_excluded = 5)
    threshold = np.sort(loss.to_numpy())[-5]
    rows = pd.DataFrame({"run_id": [f"chinchilla-{i:03d}" for i in range(len(raw))], "N": n,
                         "D": c / (6 * n), "C": c, "loss": loss, "epoch_excluded": loss >= threshold})
    write(out, "epoch_chinchilla", rows, {
        "source": {"repository": EPOCH_REPO, "path": path, "commit": git_commit(gitdir)},
        "what": "Hoffmann et al. 2022's runs as extracted by Epoch AI from Chinchilla's Figure 4 (SVG)",
        "N": "total parameters as Chinchilla reports them (the 'Model Size' column)",
        "D": "Training FLOP / (6·N), as Epoch computes it", "loss": "final training loss as plotted",
        "rows": f"{len(rows)} runs; epoch_excluded marks the 5 highest losses Epoch drops (240 remain)",
        "published": {"reference": "Besiroglu et al. 2024, 'Chinchilla Scaling: A replication attempt', "
                                   "refit on the 4,500-start grid, Huber δ=1e-3 on log loss, L-BFGS",
                      "E": 1.817, "alpha": 0.3473, "beta": 0.3672},
    })


def convert_porian(gitdir: str, out: Path) -> None:
    blob = git_show(gitdir, PORIAN_PICKLE)
    digest = hashlib.sha256(blob).hexdigest()
    if digest != PORIAN_SHA256:
        raise SystemExit(f"{PORIAN_PICKLE}: sha256 {digest} is not the inspected {PORIAN_SHA256}; not unpickling")
    summary = pd.read_pickle(io.BytesIO(blob), compression="xz")
    commit = git_commit(gitdir)
    for key, name, published_a, n_counts in PORIAN_SETTINGS:
        match = summary[[tuple(r) == key for r in summary[["dataset", "hparams", "warmup", "decay",
                                                            "param_count", "val"]].itertuples(index=False)]]
        if len(match) != 1:
            raise SystemExit(f"{PORIAN_PICKLE}: expected one row for setting {key}, found {len(match)}")
        row = match.iloc[0]
        rows, minima = [], []
        for profile in row["data"].itertuples():
            if not isinstance(profile.orig_n, pd.Series):  # < 3 runs reached this budget: no profile
                continue
            for n, t, loss in zip(profile.orig_n, profile.orig_t, profile.orig_loss):
                rows.append({"run_id": f"{name}-{profile.flops:.3g}-{int(n)}", "budget": profile.flops,
                             "N": float(n), "D": float(t), "loss": float(loss)})
        for pair in row["optimal_pairs"].itertuples():
            fitted = pair.n is not None and np.isfinite(pair.n)
            minima.append({"budget": pair.flops, "n_opt": float(pair.n) if fitted else None,
                           "loss_opt": float(pair.loss) if fitted else None})
        a = row["fit_results"]["bs_median_weighted"]["n_exponent"]
        if abs(a - published_a) > 1e-3:  # the paper rounds to 3 digits
            raise SystemExit(f"{name}: the pickle's a = {a:.4f} is not the published {published_a}")
        write(out, name, pd.DataFrame(rows), {
            "source": {"repository": PORIAN_REPO, "path": PORIAN_PICKLE, "commit": commit, "sha256": digest,
                       "setting": list(key)},
            "what": "Porian et al. 2024, RefinedWeb IsoFLOP profiles: the per-budget points their analysis fits "
                    "(each run's loss interpolated at the budget along its own loss curve)",
            "N": n_counts, "D": "tokens = budget / (6·N)", "budget": "FLOPs, 1.25e16·2^k for k = 0..11",
            "convention": "their N* per budget is the minimum of an Akima interpolant of log loss against log N "
                          "(a minimum at either end of the sampled sizes does not count), bootstrapped over seed "
                          "noise; a is a weighted least-squares slope of log N* (bootstrap median) against log C, "
                          "weights 1/var(log N*), over the budgets with a bracketed minimum",
            "published": {"reference": "Porian et al. 2024, Table 2 (RefinedWeb)", "a": published_a,
                          "a_from_pickle": a, "minima": minima},
        })


def _olmo_run(gitdir: str, path: str) -> tuple[float, float]:
    """(tokens at the last evaluation, mean C4 loss over the last 5 evaluations), as the paper's step 1 reads a run."""
    rows = list(csv.DictReader(io.StringIO(git_show(gitdir, path).decode())))[-OLMO_MOVING_AVG:]
    last = rows[-1]
    if "throughput/total_tokens" in last:
        tokens = float(last["throughput/total_tokens"])
    else:
        tokens = float(last["_step"]) * float(last["batch_size_in_tokens"])
    return tokens, float(np.mean([float(r[OLMO_LOSS_KEY]) for r in rows]))


def convert_olmo(gitdir: str, out: Path) -> None:
    base = "src/scripts/paper/data/ladder-runs"
    rows = []
    for size, n in OLMO_SIZES.items():
        for mult in OLMO_MULTIPLIERS:
            tokens, loss = _olmo_run(gitdir, f"{base}/{size}-{mult}.csv")
            rows.append({"run_id": f"olmo-{size}-{mult}", "N": n, "D": tokens, "loss": loss, "multiplier": mult,
                         "paper_fit": size in OLMO_FIT_SIZES and mult in OLMO_FIT_MULTIPLIERS})
    published = git_show(gitdir, "src/scripts/paper/figures/step1_c4_main.csv").decode().splitlines()[1].split(",")
    write(out, "olmo_ladder", pd.DataFrame(rows), {
        "source": {"repository": OLMO_REPO, "path": base, "commit": git_commit(gitdir)},
        "what": "OLMo model ladder (Bhagia et al. 2024): final C4 loss of each ladder run",
        "N": "the ladder's parameter count per size (final.json 'n'; their utils.py calls it non-embedding)",
        "D": "tokens at the last evaluation (throughput/total_tokens, else _step·batch_size_in_tokens)",
        "loss": "Paloma C4 cross-entropy (eval/c4_en-validation), mean of the last 5 evaluations",
        "rows": "190M–3B at 0.5–10× Chinchilla tokens; paper_fit marks the 16 runs of configs/final.json "
                "(190M–1.3B at 1, 2, 5, 10×); the -rerun files are not included",
        "step1_law": "L = exp(a)/N^α + exp(b)/D^β + E, Huber δ=1e-3 on log L̂ − log L summed over the 16 runs, "
                     "one L-BFGS-B start p0 = (a, b, α, β, E) = (3, 6, 0.1, 0.2, 1), every parameter ≥ 0 "
                     "(src/scripts/step1.py, src/scaling/fitting_functions.py)",
        "target": {"name": "13B-5T", "N": 13202396160, "D": 5000088518656,
                   "note": "N and D from the paper README's predict command; its run's CSV "
                           "(peteish13_eval_final.csv) is not in the snapshot, so the actual loss is the "
                           "published one"},
        "published": {"reference": "src/scripts/paper/figures/step1_c4_main.csv", "actual": float(published[1]),
                      "predicted": float(published[2])},
    })


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epoch", required=True, help=f"git dir of {EPOCH_REPO}")
    parser.add_argument("--porian", required=True, help=f"git dir of {PORIAN_REPO}")
    parser.add_argument("--olmo", required=True, help=f"git dir of {OLMO_REPO}")
    parser.add_argument("--out", default="tests/golden", type=Path)
    args = parser.parse_args()
    convert_epoch(args.epoch, args.out)
    convert_porian(args.porian, args.out)
    convert_olmo(args.olmo, args.out)


if __name__ == "__main__":
    main()
