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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lm.conventions import COMPUTE_CONVENTIONS, DEFAULT_N_CONVENTION, N_CONVENTIONS, PRECISIONS  # names only: no torch

if TYPE_CHECKING:  # annotations only: the handlers import their libraries lazily, so --help stays instant
    import pandas as pd

    from analysis.study_fit import StudyFit

FIT_FORMAT = "scaling-lab fit v2"


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


def _add_source_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="SOURCE", help="a run store folder (runs/<id>/row.json), or a .csv/.parquet table")
    g = p.add_argument_group("columns (for tables that use other names)")
    g.add_argument("--n-col", default="N", help="column holding the parameter count N (default N)")
    g.add_argument("--d-col", default="D", help="column holding the training tokens D (default D)")
    g.add_argument("--loss-col", default="loss", help="column holding the final loss (default loss)")


def _add_convention_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("compute convention (refit N, C and the IsoFLOP budgets under one; analysis/compute.py)")
    g.add_argument("--compute", dest="compute_convention", choices=COMPUTE_CONVENTIONS,
                   help="what C counts: exact FLOPs (the runs' C_exact) or 6·N·D (default: as the runs were planned)")
    g.add_argument("--n-convention", choices=N_CONVENTIONS,
                   help="the N to fit, from the runs' parameter groups (default: the runs' own)")


def _reconvene(runs, args, messages: list[str]):
    """The table under the convention the flags ask for; --n-col alone refits 6·N·D with that column's N."""
    from analysis.compute import own_conventions, under_convention

    compute, n_convention = getattr(args, "compute_convention", None), getattr(args, "n_convention", None)
    mapped = args.n_col != "N"
    if compute is None and n_convention is None and not mapped:
        return runs
    if mapped and n_convention is not None:
        raise ValueError("--n-col and --n-convention both choose N: give one")
    if compute is None:  # keep the kind the runs were planned in (6N when the N column was remapped)
        kinds = {c.split("_")[0] for c in own_conventions(runs)}
        compute = "exact" if kinds == {"exact"} and not mapped else "6N"
    if n_convention is None and not mapped:
        conventions = runs["n_convention"].dropna().unique() if "n_convention" in runs.columns else []
        n_convention = str(conventions[0]) if len(conventions) == 1 else None
    table = under_convention(runs, compute=compute, n_convention=n_convention, n_label=args.n_col)
    if table.message:
        messages.append(table.message)
    return table.runs


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


@dataclass(frozen=True)
class RunContext:
    """What the model shape of a recommendation needs from the runs it was fitted on: vocabulary size,
    context length and the N convention the table counts. None where the source does not say."""

    vocab_size: int | None = None
    context_length: int | None = None
    n_convention: str | None = None

    @classmethod
    def of(cls, runs) -> RunContext:
        """The values every run of the table shares (a column with several values says nothing)."""
        def single(column, kind):
            if column not in runs.columns:
                return None
            values = runs[column].dropna().unique()
            return kind(values[0]) if len(values) == 1 else None
        return cls(single("vocab_size", int), single("context_length", int), single("n_convention", str))


@dataclass(frozen=True)
class SourceFit:
    """A fitted source: its table, curves, the fit and the run context."""

    runs: pd.DataFrame
    curves: pd.DataFrame | None
    fit: StudyFit
    context: RunContext


def _run_fit(args, *, holdout_text: str | None) -> SourceFit:
    """Read the source and fit it; print what the reading and the fit warned of, once each."""
    from analysis.study_fit import fit_all
    from analysis.table import NoCurvesError, load_curves, load_table

    if args.bootstrap < 2:
        raise ValueError(f"--bootstrap must be ≥ 2, got {args.bootstrap}")
    if not 0 < args.level < 1:
        raise ValueError(f"--level must be in (0, 1), got {args.level}")
    messages = []
    loaded = load_table(args.source, n_col=args.n_col, d_col=args.d_col, loss_col=args.loss_col)
    runs, notes = loaded.table, list(loaded.notes)
    approaches = (1, 2, 3) if args.approach == "all" else (int(args.approach),)
    curves = None
    if 1 in approaches:
        try:
            loaded_curves = load_curves(args.source, n_col=args.n_col, d_col=args.d_col)
            curves, notes = loaded_curves.table, notes + list(loaded_curves.notes)
        except (ValueError, FileNotFoundError) as error:
            if args.approach == "1":
                raise
            if not isinstance(error, NoCurvesError):  # a plain results table: fit_all's "skipped" line says it
                messages.append(f"Approach 1 skipped: {error}")
    runs = _reconvene(runs, args, messages)
    if curves is not None and "run_id" in runs.columns:  # the curves under the table's (new) N and compute
        by_run = runs.set_index("run_id")
        curves = curves.assign(N=curves["run_id"].map(by_run["N"]).fillna(curves["N"]),
                               C_per_token=curves["run_id"].map(by_run["C"] / by_run["D"]))
    messages = list(dict.fromkeys(messages + notes))
    for message in messages:
        print(f"scaling {args.command}: warning: {message}", file=sys.stderr)
    if "run_id" not in runs.columns:
        runs = runs.assign(run_id=[f"row{i}" for i in range(len(runs))])
    holdout = _parse_holdout(holdout_text, runs) if len(runs) else []
    fit = fit_all(runs, curves, approaches=approaches, n_bootstrap=args.bootstrap, seed=args.seed,
                  holdout=holdout, level=args.level)
    for message in fit.warnings:
        if message not in messages:
            print(f"scaling {args.command}: warning: {message}", file=sys.stderr)
    return SourceFit(runs, curves, fit, RunContext.of(runs))


def fit_document(source_fit: SourceFit, source: str) -> dict:
    """The JSON form of a fit: the StudyFit's own tree (`StudyFit.from_dict` reads it back) and the run context."""
    from analysis.serialize import to_tree

    return {"format": FIT_FORMAT, "source": source, "runs": to_tree(source_fit.context),
            "fit": source_fit.fit.to_dict()}


def _load_fit(path: str) -> tuple[StudyFit, RunContext]:
    """(StudyFit, RunContext) from a fit file written by `scaling fit --format json`."""
    from analysis.serialize import from_tree
    from analysis.study_fit import StudyFit

    file = Path(path)
    try:
        doc = json.loads(file.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"--from {path}: not JSON ({error})") from None
    if not isinstance(doc, dict) or doc.get("format") != FIT_FORMAT:
        raise ValueError(f"--from {path}: not a fit file from `scaling fit --format json` (format {FIT_FORMAT!r})")
    try:
        return StudyFit.from_dict(doc["fit"]), from_tree(RunContext, doc["runs"])
    except (KeyError, ValueError, TypeError) as error:
        raise ValueError(f"--from {path}: not a readable fit ({error})") from None


# --------------------------------------------------------------------------------------------- fit

def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _with_interval(value, interval) -> str:
    lo, hi = interval if interval is not None else (None, None)
    known = lo is not None and math.isfinite(lo) and math.isfinite(hi)
    return f"{_fmt(value)}  [{_fmt(lo)}, {_fmt(hi)}]" if known else _fmt(value)


def fit_table(fit, source: str) -> str:
    """A short human-readable summary of a StudyFit."""
    lines = [f"{source}: {fit.n_runs} runs; intervals at {fit.level:.0%}"]
    a3, boot = fit.approach3, fit.approach3_bootstrap
    if a3 is not None:
        lines.append(f"Approach 3  L(N, D) = E + A/N^alpha + B/D^beta   ({'ok' if a3.success else 'NOT OK'}: {a3.message})")
        for key in ("E", "A", "B", "alpha", "beta", "a", "b"):
            lines.append(f"  {key:<6} {_with_interval(getattr(a3, key), boot.intervals[key] if boot else None)}")
        if boot is not None:
            lines.append(f"  bootstrap: {boot.message}")
    for number, law in ((1, fit.approach1), (2, fit.approach2)):
        if law is not None:
            lines.append(f"Approach {number}  N_opt ∝ C^a   ({'ok' if law.success else 'NOT OK'}: {law.message})")
            lines.append(f"  a      {_with_interval(law.a, law.a_interval)}")
            lines.append(f"  b      {_with_interval(law.b, law.b_interval)}")
    if fit.frontier is not None:
        form = "E + G·C^-gamma" if fit.frontier.has_floor else "G·C^-gamma"
        lines.append(f"Loss frontier  L_opt(C) = {form} through Approach 2's minima   ({fit.frontier.message})")
        if fit.frontier.has_floor:
            lines.append(f"  E      {_with_interval(fit.frontier.E, fit.frontier.E_interval)}")
        lines.append(f"  G      {_fmt(fit.frontier.G)}")
        lines.append(f"  gamma  {_with_interval(fit.frontier.gamma, fit.frontier.gamma_interval)}")
    for law, label in ((fit.lr_law, "lr_opt"), (fit.batch_law, "batch_opt")):
        if law is not None:
            lines.append(f"{label} = k·C^p   k {_with_interval(law.k, law.k_interval)}   p {_with_interval(law.p, law.p_interval)}")
    if fit.lr_horizon_law is not None and fit.lr_horizon_law.success:
        h = fit.lr_horizon_law
        lines.append(f"lr_opt = k·N^p_N·D^p_D   k {_fmt(h.k)}   p_N {_with_interval(h.p_N, h.p_N_interval)}   "
                     f"p_D {_with_interval(h.p_D, h.p_D_interval)}")
    if fit.noise_floor is not None and fit.noise_floor.success:
        nf = fit.noise_floor
        lines.append(f"noise floor: seed sd {nf.sd:.4g} nats ({nf.relative_sd:.2%}); {nf.message}; per budget "
                     + ", ".join(f"{b.budget:.3g}: {b.sd:.4g}" for b in nf.budgets))
    lines.extend(f"unreliable: {sentence}" for sentence in fit.unreliable_intervals())
    if fit.consistency is not None:
        lines.append(f"consistency: {fit.consistency.message}")
    if fit.backtest is not None:
        lines.append(f"backtest: {fit.backtest.message}")
    if fit.headline is not None:
        lines.append(f"headline predictor: {fit.headline.name} ({fit.headline.reason})")
    for name, reason in fit.skipped:
        lines.append(f"skipped {name}: {reason}")
    return "\n".join(lines) + "\n"


def cmd_fit(args) -> int:
    source_fit = _run_fit(args, holdout_text=args.holdout)
    fit = source_fit.fit
    if fit.headline is None:  # say what could not be fitted, and leave no fit file behind that predicts nothing
        from analysis.prediction import NoFitError

        if not args.out:
            sys.stdout.write(fit_table(fit, str(args.source)))
        raise NoFitError(_nothing_fitted(fit))
    if args.format == "json":
        text = json.dumps(fit_document(source_fit, str(args.source)), indent=1, allow_nan=False) + "\n"
    else:
        text = fit_table(fit, str(args.source))
    if args.out:
        import atomicio  # noqa: PLC0415

        atomicio.write_text(args.out, text)
        print(f"scaling fit: wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _nothing_fitted(fit) -> str:
    reasons = "; ".join(f"{name}: {reason}" for name, reason in fit.failures())
    return f"no approach could be fitted ({reasons})"


# --------------------------------------------------------------------------------------------- predict

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


def _shape(args, context: RunContext, best, batch_size: int) -> dict | None:
    """The buildable model nearest the headline's N_opt, vocabulary and context from the flags first, then the runs.
    A value neither gives is not assumed: there is then no shape, and a warning names the flags (a published table
    of N, D and loss says neither, and its N_opt, D_opt and loss are still worth printing)."""
    vocab = args.vocab_size or context.vocab_size
    length = args.context or context.context_length
    missing = [flag for flag, value in (("--vocab-size", vocab), ("--context", length)) if value is None]
    if missing:
        print(f"scaling predict: warning: no model shape: the runs do not say their "
              f"{' and '.join(m[2:].replace('-', ' ') for m in missing)}; give {' and '.join(missing)} for one",
              file=sys.stderr)
        return None
    said = [f"{name} {value} from the {'flag' if flag else 'runs'}" for name, value, flag in (
        ("vocab", vocab, args.vocab_size), ("context", length, args.context))]
    convention = args.convention or context.n_convention or DEFAULT_N_CONVENTION
    return shape_for(best.n_opt.value, best.d_opt.value, vocab_size=vocab, context=length, convention=convention,
                     batch_size=batch_size, precision=args.precision) | {"from": ", ".join(said)}


def cmd_predict(args) -> int:
    if (args.source is None) == (args.from_fit is None):
        raise ValueError("give exactly one of SOURCE (runs to fit, or a fit file) or --from FIT")
    if (args.params is None) != (args.tokens is None):
        raise ValueError("--params and --tokens go together")
    if args.compute is None and args.params is None:
        raise ValueError("give --compute C, or --params N --tokens D")
    fit, context = _fit_for_predict(args)
    from analysis.serialize import to_tree

    if args.params is not None:
        out = _predict_run(fit, args.params, args.tokens, args.predictor)
        sys.stdout.write(json.dumps(out, indent=1) + "\n" if args.json else _run_table(out))
        return 0
    prediction = fit.predict_at(args.compute, predictor=args.predictor)
    best = prediction.best
    batch = args.batch_size or (max(1, round(prediction.batch_size.value)) if prediction.batch_size.known else 16)
    shape = _shape(args, context, best, batch)
    out = to_tree(prediction) | {"shape": shape}
    for message in prediction.warnings:
        print(f"scaling predict: warning: {message}", file=sys.stderr)
    sys.stdout.write(json.dumps(out, indent=1, allow_nan=False) + "\n" if args.json else _predict_table(prediction, shape))
    return 0


def _fit_for_predict(args):
    """(StudyFit, RunContext): loaded from a fit file (--from, or a SOURCE that is one), else fitted from SOURCE."""
    path = args.from_fit or args.source
    if not Path(path).exists():
        raise FileNotFoundError(f"{path}: no such file or store")
    if args.from_fit is not None or Path(path).suffix == ".json":
        fit, context = _load_fit(path)
    else:
        source_fit = _run_fit(args, holdout_text=None)  # the backtest picks the headline, as in `scaling fit`
        fit, context = source_fit.fit, source_fit.context
    if fit.headline is None:
        from analysis.prediction import NoFitError

        raise NoFitError(_nothing_fitted(fit))
    return fit, context


def _predict_run(fit, n: float, d: float, predictor: str | None) -> dict:
    from analysis.prediction import PREDICTORS
    from analysis.serialize import to_tree

    headline = fit.headline_for(predictor)
    by_predictor = {name: fit.predict_run(n, d, by=name) for name in PREDICTORS}
    by_predictor = {name: e for name, e in by_predictor.items() if e.known}
    if headline.predictor not in by_predictor:
        raise ValueError(f"{headline.name} cannot predict a run's loss (no loss law was fitted)")
    return to_tree({"N": n, "D": d, "C": float(fit.per_token(n)) * d, "level": fit.level, "headline": headline,
                    "loss": by_predictor[headline.predictor], "by_predictor": by_predictor})


def _run_table(out: dict) -> str:
    lines = [f"L(N={out['N']:.4g}, D={out['D']:.4g}), intervals at {out['level']:.0%}:"]
    for name, estimate in out["by_predictor"].items():
        mark = "  <- headline" if name == out["headline"]["predictor"] else ""
        lines.append(f"  {name:<10} {_with_interval(estimate['value'], estimate['interval'])} nats/token{mark}")
    return "\n".join(lines) + "\n"


def _predict_table(prediction, shape: dict | None) -> str:
    best = prediction.best
    lines = [f"at C = {prediction.compute:.4g} FLOPs ({prediction.extrapolation:.3g}× the largest budget fitted; "
             f"intervals at {prediction.level:.0%})",
             f"headline: {prediction.headline.name}: {prediction.headline.reason}"]
    for key, label in (("n_opt", "N_opt"), ("d_opt", "D_opt"), ("tokens_per_param", "D/N"), ("loss", "loss")):
        estimate = getattr(best, key)
        lines.append(f"  {label:<11} {_with_interval(estimate.value, estimate.interval)}")
    for key, label in (("lr", "lr"), ("batch_size", "batch size")):
        estimate = getattr(prediction, key)
        lines.append(f"  {label:<11} {_with_interval(estimate.value, estimate.interval)}")
    for other in prediction.allocations:
        if other.approach != best.approach:
            loss = f", loss {_with_interval(other.loss.value, other.loss.interval)}" if other.loss.known else ""
            lines.append(f"  {other.name}: N_opt {_with_interval(other.n_opt.value, other.n_opt.interval)}{loss}")
    if shape is None:
        return "\n".join(lines) + "\n"
    lines.append(f"  shape       {shape['n_layers']} layers × d_model {shape['d_model']}, {shape['n_heads']} heads, "
                 f"d_ff {shape['d_ff']}: N = {shape['n_params']:,} ({shape['convention']}, "
                 f"{shape['n_params_vs_n_opt']:.3f}× N_opt; {shape['from']})")
    lines.append(f"  training    {shape['train_flops_exact']:.3e} FLOPs (exact count; 6ND {shape['train_flops_6ND']:.3e}), "
                 f"{shape['memory_bytes']['total'] / 2**30:.2f} GiB at batch {shape['batch_size']} ({shape['precision']})")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------- plot

def cmd_plot(args) -> int:
    from analysis.plots import save_all_plots

    source_fit = _run_fit(args, holdout_text="none")
    paths = save_all_plots(source_fit.fit, source_fit.runs, source_fit.curves, args.out)
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
    _add_convention_args(p)
    _add_fit_args(p)
    p.add_argument("--holdout", metavar="BUDGETS_OR_RUN_IDS",
                   help="comma-separated budgets (FLOPs) and/or run ids to backtest on; 'none' skips the backtest "
                        "(default: the largest budget)")
    p.add_argument("--format", choices=("table", "json"), default="table", help="output format (default table)")
    p.add_argument("--out", metavar="FILE", help="write the output here (atomically) instead of stdout")
    p.set_defaults(func=cmd_fit)

    p = subparsers.add_parser("predict", help="compute-optimal N, D, loss, lr, batch size and model shape at a budget",
                              description="Predict from a fit file (--from) or by fitting SOURCE first.")
    p.add_argument("source", metavar="SOURCE", nargs="?",
                   help="runs to fit (a store, .csv or .parquet), or a fit file (.json) from `scaling fit`")
    p.add_argument("--from", dest="from_fit", metavar="FIT", help="a fit file from `scaling fit --format json --out`, "
                                                                  "or any SOURCE")
    p.add_argument("--predictor", choices=("auto", "frontier", "approach3"), default="auto",
                   help="which predictor leads: auto (the backtest's winner, ties to Approach 3; docs/methods.md) "
                        "or one by name")
    p.add_argument("--compute", type=_positive_float("--compute"), help="compute budget C in FLOPs")
    p.add_argument("--params", type=_positive_float("--params"), help="predict the loss of a run with N parameters ...")
    p.add_argument("--tokens", type=_positive_float("--tokens"), help="... trained on D tokens")
    p.add_argument("--json", action="store_true", help="print JSON")
    g = p.add_argument_group("model shape")
    g.add_argument("--convention", choices=N_CONVENTIONS,
                   help=f"the N convention the fit used (default: the runs', else {DEFAULT_N_CONVENTION})")
    g.add_argument("--vocab-size", type=int, help="vocabulary size (default: the runs')")
    g.add_argument("--context", type=int, help="context length (default: the runs')")
    g.add_argument("--batch-size", type=int, help="sequences per step for the memory estimate "
                                                  "(default: the predicted batch size, else 16)")
    g.add_argument("--precision", choices=PRECISIONS, default="bf16", help="for the memory estimate")
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
    _add_convention_args(p)
    _add_fit_args(p)
    p.add_argument("--out", metavar="DIR", required=True, help="folder for the figures")
    p.set_defaults(func=cmd_plot)
