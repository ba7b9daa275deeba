"""The analysis commands of `scaling`: fit, predict, plot. `scaling/cli.py` calls `register(subparsers)`.

- `scaling fit SOURCE` fits every approach the runs support (`analysis.study_fit.fit_all`) and prints a
  table or JSON. The JSON is also the input of `predict --from`: it holds every estimate with its
  interval plus the bootstrap samples (`samples`) that turn into intervals at any new compute budget.
- `scaling predict --compute C` gives N_opt, D_opt, tokens per parameter, the loss there and the lr and
  batch size where their laws were fitted, each with an interval, and the model shape from `lm.shapes`
  that hits N_opt, with its real parameter count, training FLOPs and memory (`lm.accounting`).
  `predict` from a SOURCE fits first and then predicts exactly as from that fit's JSON, so both routes
  give the same numbers.
- `scaling plot SOURCE --out DIR` draws every figure (`analysis.plots.save_all_plots`).

Every library import happens inside a handler so `scaling --help` stays instant. Input errors raise
ValueError / FileNotFoundError naming the file, column or flag; `scaling.cli.main` prints them as one
line and exits 2. Warnings from the fits (excluded runs, inconsistent exponents, ...) are printed to
stderr as one line each.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from pathlib import Path

FIT_FORMAT = "scaling-lab fit v1"
APPROACH_KEYS = {1: "approach1", 2: "approach2", 3: "approach3"}


# --------------------------------------------------------------------------------------------- helpers

def _positive_float(flag: str):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} must be a number, got {text!r}") from None
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(f"{flag} must be positive and finite, got {text!r}")
        return value
    return parse


def _report_warnings(command: str, caught) -> None:
    for message in dict.fromkeys(str(w.message) for w in caught):
        print(f"scaling {command}: warning: {message}", file=sys.stderr)


def _add_source_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="SOURCE", help="a run store folder (runs/<id>/row.json), or a .csv/.parquet table")
    g = p.add_argument_group("columns (for tables that use other names)")
    g.add_argument("--n-col", default="N", help="column holding the parameter count N (default N)")
    g.add_argument("--d-col", default="D", help="column holding the training tokens D (default D)")
    g.add_argument("--loss-col", default="loss", help="column holding the final loss (default loss)")


def _add_fit_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--approach", choices=("1", "2", "3", "all"), default="all",
                   help="1 envelope of curves, 2 IsoFLOP profiles, 3 parametric L(N, D), or all (default)")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N", help="bootstrap resamples (default 1000)")
    p.add_argument("--level", type=float, default=0.95, help="interval level (default 0.95)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")


def _parse_holdout(text: str | None, runs) -> list[str] | None:
    """None: the default (largest budget); 'none': no backtest; else budgets (numbers) and/or run ids."""
    if text is None:
        return None
    if text.strip().lower() == "none":
        return []
    ids: list[str] = []
    budgets = runs["budget"] if "budget" in runs.columns else runs["C"]
    for token in (t.strip() for t in text.split(",") if t.strip()):
        known = "run_id" in runs.columns and token in set(runs["run_id"].astype(str))
        try:
            budget = float(token)
        except ValueError:
            budget = None
        if known or budget is None:
            ids.append(token)  # fit_all names run ids it does not know
            continue
        near = (budgets.notna() & ((budgets / budget).map(lambda r: abs(math.log(r)) if r > 0 else math.inf) < 0.12))
        if not near.any():
            raise ValueError(f"--holdout: no run has budget {token} (budgets: "
                             f"{', '.join(f'{b:.3g}' for b in sorted(budgets.dropna().unique()))})")
        ids += [str(r) for r in runs.loc[near, "run_id"]]
    return ids


def _run_fit(args, *, holdout_text: str | None):
    """Read the source and fit: (runs, curves, StudyFit), warnings collected by the caller."""
    from analysis.study_fit import fit_all
    from analysis.table import read_curves, read_table

    if args.bootstrap < 2:
        raise ValueError(f"--bootstrap must be ≥ 2, got {args.bootstrap}")
    if not 0 < args.level < 1:
        raise ValueError(f"--level must be in (0, 1), got {args.level}")
    runs = read_table(args.source, n_col=args.n_col, d_col=args.d_col, loss_col=args.loss_col)
    approaches = (1, 2, 3) if args.approach == "all" else (int(args.approach),)
    curves = None
    if 1 in approaches:
        try:
            curves = read_curves(args.source, n_col=args.n_col, d_col=args.d_col)
        except (ValueError, FileNotFoundError) as error:
            if args.approach == "1":
                raise
            warnings.warn(f"Approach 1 skipped: {error}")
    if "run_id" not in runs.columns:
        runs = runs.assign(run_id=[f"row{i}" for i in range(len(runs))])
    holdout = _parse_holdout(holdout_text, runs)
    study = fit_all(runs, curves, approaches=approaches, n_bootstrap=args.bootstrap, seed=args.seed,
                    holdout=holdout, level=args.level)
    return runs, curves, study


def fit_document(study, source: str) -> dict:
    """The JSON form of a study fit: `StudyFit.to_dict()` plus the bootstrap samples predict needs."""
    import numpy as np

    from analysis.study_fit import json_safe

    samples = {}
    boot = study.approach3_bootstrap
    if boot is not None:
        samples["approach3"] = boot.samples[boot.converged]
    for key, law in (("approach1", study.approach1), ("approach2", study.approach2),
                     ("lr_law", study.lr_law), ("batch_size_law", study.batch_law)):
        if law is not None and law.success and law.law_samples.size:
            samples[key] = law.law_samples
    if study.frontier is not None and study.frontier.samples.size:
        samples["frontier"] = study.frontier.samples  # rows of ln G, gamma, ln k_n, a, kappa, E
    doc = {"format": FIT_FORMAT, "source": source} | study.to_dict()
    doc["samples"] = json_safe({k: np.asarray(v, dtype=float) for k, v in samples.items()})
    return doc


# --------------------------------------------------------------------------------------------- fit

def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _with_interval(d: dict, key: str) -> str:
    interval = d.get(f"{key}_interval") or [None, None]
    inside = "" if interval[0] is None else f"  [{_fmt(interval[0])}, {_fmt(interval[1])}]"
    return f"{_fmt(d.get(key))}{inside}"


def fit_table(doc: dict) -> str:
    """A short human-readable summary of a fit document."""
    level = doc.get("level", 0.95)
    lines = [f"{doc['source']}: {doc['n_runs']} runs; intervals at {level:.0%}"]
    a3 = doc.get("approach3")
    if a3:
        lines.append(f"Approach 3  L(N, D) = E + A/N^alpha + B/D^beta   ({'ok' if a3['success'] else 'NOT OK'}: {a3['message']})")
        for key in ("E", "A", "B", "alpha", "beta", "a", "b"):
            lines.append(f"  {key:<6} {_with_interval(a3, key)}")
        if a3.get("bootstrap"):
            lines.append(f"  bootstrap: {a3['bootstrap']['message']}")
    for number in (1, 2):
        law = doc.get(f"approach{number}")
        if law:
            lines.append(f"Approach {number}  N_opt ∝ C^a   ({'ok' if law['success'] else 'NOT OK'}: {law['message']})")
            lines.append(f"  a      {_with_interval(law, 'a')}")
            lines.append(f"  b      {_with_interval(law, 'b')}")
    frontier = doc.get("frontier")
    if frontier:
        lines.append(f"Loss frontier  L_opt(C) = E + G·C^-gamma through Approach 2's minima   ({frontier['message']})")
        if frontier.get("has_floor"):
            lines.append(f"  E      {_with_interval(frontier, 'E')}")
        lines.append(f"  G      {_fmt(frontier['G'])}")
        lines.append(f"  gamma  {_with_interval(frontier, 'gamma')}")
    for key, label in (("lr_law", "lr_opt"), ("batch_size_law", "batch_opt")):
        law = doc.get(key)
        if law:
            lines.append(f"{label} = k·C^p   k {_with_interval(law, 'k')}   p {_with_interval(law, 'p')}")
    if doc.get("consistency"):
        lines.append(f"consistency: {doc['consistency']['message']}")
    if doc.get("backtest"):
        lines.append(f"backtest: {doc['backtest']['message']}")
    for name, reason in (doc.get("skipped") or {}).items():
        lines.append(f"skipped {name}: {reason}")
    return "\n".join(lines) + "\n"


def cmd_fit(args) -> int:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, _, study = _run_fit(args, holdout_text=args.holdout)
    _report_warnings("fit", caught)
    doc = fit_document(study, str(args.source))
    text = json.dumps(doc, indent=1) + "\n" if args.format == "json" else fit_table(doc)
    if args.out:
        from analysis.table import write_text_atomic  # noqa: PLC0415

        write_text_atomic(Path(args.out), text)
        print(f"scaling fit: wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


# --------------------------------------------------------------------------------------------- predict

def _interval(samples, level: float) -> list:
    from analysis.powerlaw import percentile_interval

    return list(percentile_interval(samples, level)) if samples is not None and len(samples) else [None, None]


def _law_samples(doc: dict, key: str):
    import numpy as np

    rows = (doc.get("samples") or {}).get(key)
    return None if not rows else np.array(rows, dtype=float)


def predict_document(doc: dict, compute: float) -> dict:
    """The recommendation at compute C from a fit document: Approach 3 when fitted, else 2, else 1."""
    import numpy as np

    from analysis.bootstrap import optimum_samples
    from analysis.parametric import ChinchillaParams, compute_optimal, predict_loss

    level = float(doc.get("level") or 0.95)
    out: dict = {"compute": compute, "level": level, "by_approach": {}}
    for number in (1, 2):
        law, key = doc.get(f"approach{number}"), f"approach{number}"
        if law and law.get("success") and law.get("k_n") and law.get("a") is not None:
            n_opt = law["k_n"] * compute ** law["a"]
            s = _law_samples(doc, key)
            n_s = None if s is None else s[:, 0] * compute ** s[:, 1]
            out["by_approach"][key] = {"n_opt": n_opt, "n_opt_interval": _interval(n_s, level),
                                       "d_opt": compute / (6 * n_opt),
                                       "d_opt_interval": _interval(None if n_s is None else compute / (6 * n_s), level)}
    frontier = doc.get("frontier")
    if frontier and "approach2" in out["by_approach"]:  # Approach 2's loss: the frontier through its minima
        s = _law_samples(doc, "frontier")
        floor = frontier.get("E") or 0.0  # E + G·C^-γ; fits saved before the floor have none
        out["by_approach"]["approach2"]["loss"] = floor + frontier["G"] * compute ** -frontier["gamma"]
        floors = s[:, 5] if s is not None and s.shape[1] > 5 else 0.0
        out["by_approach"]["approach2"]["loss_interval"] = _interval(
            None if s is None else floors + np.exp(s[:, 0] - s[:, 1] * math.log(compute)), level)
    a3 = doc.get("approach3")
    if a3 and all(a3.get(k) is not None for k in ("E", "A", "B", "alpha", "beta")):
        params = ChinchillaParams(E=a3["E"], A=a3["A"], B=a3["B"], alpha=a3["alpha"], beta=a3["beta"])
        n_opt, d_opt = (float(v) for v in compute_optimal(params, compute))
        s = _law_samples(doc, "approach3")
        opt = optimum_samples(s, compute) if s is not None else {"n_opt": None, "d_opt": None, "loss": None}
        out["by_approach"]["approach3"] = {
            "n_opt": n_opt, "n_opt_interval": _interval(opt["n_opt"], level),
            "d_opt": d_opt, "d_opt_interval": _interval(opt["d_opt"], level),
            "loss": float(predict_loss(params, n_opt, d_opt)), "loss_interval": _interval(opt["loss"], level),
            "tokens_per_param": d_opt / n_opt,
            "tokens_per_param_interval": _interval(None if s is None else opt["d_opt"] / opt["n_opt"], level),
        }
    chosen = next((k for k in ("approach3", "approach2", "approach1") if k in out["by_approach"]), None)
    if chosen is None:
        raise ValueError("the fit has no successful approach to predict from (see its 'skipped' and messages)")
    best = out["by_approach"][chosen]
    out["approach"] = chosen
    for key in ("n_opt", "d_opt", "loss", "tokens_per_param"):
        out[key], out[f"{key}_interval"] = best.get(key), best.get(f"{key}_interval", [None, None])
    if chosen != "approach3":
        out["tokens_per_param"] = best["d_opt"] / best["n_opt"]
        lo, hi = best["n_opt_interval"]
        out["tokens_per_param_interval"] = [None, None] if lo is None else [compute / (6 * hi**2), compute / (6 * lo**2)]
    for name, key in (("lr", "lr_law"), ("batch_size", "batch_size_law")):
        law = doc.get(key)
        if law and law.get("success") and law.get("k") is not None:
            s = _law_samples(doc, key)
            out[name] = law["k"] * compute ** law["p"]
            out[f"{name}_interval"] = _interval(None if s is None else s[:, 0] * compute ** s[:, 1], level)
        else:
            out[name], out[f"{name}_interval"] = None, [None, None]
    return out


def shape_for(n_opt: float, d_opt: float, *, vocab_size: int, context: int, convention: str, batch_size: int,
              precision: str) -> dict:
    """The buildable model nearest N_opt: shape, real parameter counts, training FLOPs and memory."""
    from lm.accounting import param_counts, training_flops_per_token, training_memory
    from lm.shapes import shape_for_params

    cfg = shape_for_params(float(n_opt), vocab_size=vocab_size, context_length=context, convention=convention)
    counts = param_counts(cfg)
    n = counts.n(convention)
    return {
        "n_layers": cfg.n_layers, "d_model": cfg.d_model, "n_heads": cfg.n_heads, "d_ff": cfg.d_ff,
        "vocab_size": vocab_size, "context_length": context, "convention": convention,
        "n_params": n, "n_params_vs_n_opt": n / n_opt, "params": counts.to_dict(),
        "train_flops_exact": training_flops_per_token(cfg, "exact") * d_opt,
        "train_flops_6ND": 6.0 * n * d_opt,
        "batch_size": batch_size, "precision": precision,
        "memory_bytes": training_memory(cfg, batch_size=batch_size, precision=precision).to_dict(),
    }


def _load_fit(path: str) -> dict:
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"--from {path}: no such file")
    try:
        doc = json.loads(file.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"--from {path}: not JSON ({error})") from None
    if not isinstance(doc, dict) or doc.get("format") != FIT_FORMAT:
        raise ValueError(f"--from {path}: not a fit file from `scaling fit --format json` (format {FIT_FORMAT!r})")
    return doc


def cmd_predict(args) -> int:
    if (args.source is None) == (args.from_fit is None):
        raise ValueError("give exactly one of SOURCE (runs to fit) or --from FIT.json")
    if (args.params is None) != (args.tokens is None):
        raise ValueError("--params and --tokens go together")
    if args.compute is None and args.params is None:
        raise ValueError("give --compute C, or --params N --tokens D")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if args.from_fit is not None:
            doc = _load_fit(args.from_fit)
        else:
            _, _, study = _run_fit(args, holdout_text="none")
            doc = fit_document(study, str(args.source))
    _report_warnings("predict", caught)
    if args.params is not None:
        out = _predict_run(doc, args.params, args.tokens)
    else:
        out = predict_document(doc, args.compute)
        batch = args.batch_size or (max(1, round(out["batch_size"])) if out["batch_size"] else 16)
        out["shape"] = shape_for(out["n_opt"], out["d_opt"], vocab_size=args.vocab_size, context=args.context,
                                 convention=args.convention, batch_size=batch, precision=args.precision)
    from analysis.study_fit import json_safe

    out = json_safe(out)
    sys.stdout.write(json.dumps(out, indent=1) + "\n" if args.json else _predict_table(out))
    return 0


def _predict_run(doc: dict, n: float, d: float) -> dict:
    from analysis.bootstrap import loss_samples
    from analysis.parametric import ChinchillaParams, predict_loss

    a3 = doc.get("approach3")
    if not a3 or a3.get("E") is None:
        raise ValueError("--params/--tokens need Approach 3 (the parametric fit), which this fit lacks")
    params = ChinchillaParams(E=a3["E"], A=a3["A"], B=a3["B"], alpha=a3["alpha"], beta=a3["beta"])
    s = _law_samples(doc, "approach3")
    level = float(doc.get("level") or 0.95)
    return {"N": n, "D": d, "C": 6 * n * d, "loss": float(predict_loss(params, n, d)),
            "loss_interval": _interval(None if s is None else loss_samples(s, n, d), level), "level": level}


def _predict_table(out: dict) -> str:
    if "n_opt" not in out:
        return f"L(N={out['N']:.4g}, D={out['D']:.4g}) = {_with_interval(out, 'loss')} nats/token\n"
    lines = [f"at C = {out['compute']:.4g} FLOPs ({out['approach']}, intervals at {out['level']:.0%}):"]
    for key, label in (("n_opt", "N_opt"), ("d_opt", "D_opt"), ("tokens_per_param", "D/N"), ("loss", "loss"),
                       ("lr", "lr"), ("batch_size", "batch size")):
        lines.append(f"  {label:<11} {_with_interval(out, key)}")
    a2 = out["by_approach"].get("approach2") or {}
    if out["approach"] != "approach2" and a2.get("loss") is not None:
        lines.append(f"  loss (loss frontier, Approach 2's N_opt {a2['n_opt']:.4g}) {_with_interval(a2, 'loss')}")
    s = out["shape"]
    lines.append(f"  shape       {s['n_layers']} layers × d_model {s['d_model']}, {s['n_heads']} heads, d_ff {s['d_ff']}: "
                 f"N = {s['n_params']:,} ({s['convention']}, {s['n_params_vs_n_opt']:.3f}× N_opt)")
    lines.append(f"  training    {s['train_flops_exact']:.3e} FLOPs (exact count; 6ND {s['train_flops_6ND']:.3e}), "
                 f"{s['memory_bytes']['total'] / 2**30:.2f} GiB at batch {s['batch_size']} ({s['precision']})")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------- plot

def cmd_plot(args) -> int:
    from analysis.plots import save_all_plots

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runs, curves, study = _run_fit(args, holdout_text="none")
        paths = save_all_plots(study, runs, curves, args.out)
    _report_warnings("plot", caught)
    for path in paths:
        print(path)
    return 0


# --------------------------------------------------------------------------------------------- parsers

def register(subparsers) -> None:
    """Add `fit`, `predict` and `plot` to the `scaling` command's subparsers."""
    p = subparsers.add_parser("fit", help="fit scaling laws to a run store or results table",
                              description="Fit Approaches 1-3, Kaplan-style laws, hyperparameter laws, "
                                          "a consistency check and a backtest to a results table.")
    _add_source_args(p)
    _add_fit_args(p)
    p.add_argument("--holdout", metavar="BUDGETS_OR_RUN_IDS",
                   help="comma-separated budgets (FLOPs) and/or run ids to backtest on; 'none' skips the backtest "
                        "(default: the largest budget)")
    p.add_argument("--format", choices=("table", "json"), default="table", help="output format (default table)")
    p.add_argument("--out", metavar="FILE", help="write the output here (atomically) instead of stdout")
    p.set_defaults(func=cmd_fit)

    p = subparsers.add_parser("predict", help="compute-optimal N, D, loss, lr, batch size and model shape at a budget",
                              description="Predict from a fit file (--from) or by fitting SOURCE first.")
    p.add_argument("source", metavar="SOURCE", nargs="?", help="runs to fit (a store, .csv or .parquet)")
    p.add_argument("--from", dest="from_fit", metavar="FIT.json", help="a fit from `scaling fit --format json --out`")
    p.add_argument("--compute", type=_positive_float("--compute"), help="compute budget C in FLOPs")
    p.add_argument("--params", type=_positive_float("--params"), help="predict the loss of a run with N parameters ...")
    p.add_argument("--tokens", type=_positive_float("--tokens"), help="... trained on D tokens")
    p.add_argument("--json", action="store_true", help="print JSON")
    g = p.add_argument_group("model shape")
    g.add_argument("--convention", choices=("non_embedding", "with_head", "total"), default="with_head",
                   help="the N convention the fit used (default with_head)")
    g.add_argument("--vocab-size", type=int, default=1024, help="vocabulary size (default 1024)")
    g.add_argument("--context", type=int, default=128, help="context length (default 128)")
    g.add_argument("--batch-size", type=int, help="sequences per step for the memory estimate "
                                                  "(default: the predicted batch size, else 16)")
    g.add_argument("--precision", choices=("fp32", "bf16"), default="bf16", help="for the memory estimate")
    g = p.add_argument_group("fitting (with SOURCE)")
    for flag, default, text in (("--n-col", "N", "column holding N"), ("--d-col", "D", "column holding D"),
                                ("--loss-col", "loss", "column holding the loss")):
        g.add_argument(flag, default=default, help=f"{text} (default {default})")
    g.add_argument("--approach", choices=("1", "2", "3", "all"), default="all", help="approaches to fit (default all)")
    g.add_argument("--bootstrap", type=int, default=1000, metavar="N", help="bootstrap resamples (default 1000)")
    g.add_argument("--level", type=float, default=0.95, help="interval level (default 0.95)")
    g.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.set_defaults(func=cmd_predict)

    p = subparsers.add_parser("plot", help="draw every figure of a fit into a folder",
                              description="Fit SOURCE and write each figure as PNG and SVG into --out.")
    _add_source_args(p)
    _add_fit_args(p)
    p.add_argument("--out", metavar="DIR", required=True, help="folder for the figures")
    p.set_defaults(func=cmd_plot)
