"""The `scaling` command: parse, validate, call one library function, print, exit with a clear code.

Subcommands import their libraries lazily, so `scaling --help` is instant and `scaling fit` never
loads torch. Errors a user can fix (bad flags, bad files, bad configs) print one line naming the
problem and exit with status 2; nothing is left half-written.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lm.conventions import DEFAULT_N_CONVENTION, N_CONVENTIONS, PRECISION_CHOICES  # names only: no torch

EXIT_USAGE = 2
EXIT_NO_FIT = 1


class UserError(Exception):
    """A problem with the user's input: printed as one line, exit status 2."""


def _add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--params", type=float, default=2e5,
                   help=f"target parameter count N, {DEFAULT_N_CONVENTION} convention (default 2e5)")
    g.add_argument("--layers", type=int, help="explicit shape: layers (with --width and --heads)")
    g.add_argument("--width", type=int, help="explicit shape: d_model")
    g.add_argument("--heads", type=int, help="explicit shape: attention heads")
    g.add_argument("--context", type=int, default=128, help="context length in tokens (default 128)")
    g.add_argument("--tie-embeddings", action="store_true", help="share the input embedding and output head")


def _add_corpus_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("corpus")
    # defaults None: lm.corpus_sources.CorpusConfig declares them (reading them here would import pyarrow
    # for every --help); `scaling train` prints the resolved corpus before it trains
    g.add_argument("--corpus",
                   help="'stdlib' (Python's own library sources, built in; the default), a directory, a glob, a .jsonl, "
                        "or a .bin/.npy of token ids")
    g.add_argument("--text-field", help="JSONL field holding the text (default: CorpusConfig's, 'text')")
    g.add_argument("--vocab-size", type=int,
                   help="BPE vocabulary size incl. 256 bytes + 1 special (default: CorpusConfig's)")
    g.add_argument("--max-bytes", type=int, default=4_000_000, help="use at most this many bytes of the corpus (default 4e6; 0 = all)")
    g.add_argument("--cache-dir", help="where tokenized corpora are cached (default $SCALING_LAB_CACHE or ~/.cache/scaling-lab)")


def _given(**values) -> dict:
    """The options the user gave: the rest keep the default of the config that declares them."""
    return {k: v for k, v in values.items() if v is not None}


def _model_config(args, vocab_size: int):
    from lm.model import ModelConfig
    from lm.shapes import shape_for_params

    explicit = (args.layers, args.width, args.heads)
    if any(v is not None for v in explicit):
        if any(v is None for v in explicit):
            raise UserError("--layers, --width and --heads must be given together")
        return ModelConfig(vocab_size=vocab_size, context_length=args.context, n_layers=args.layers,
                           d_model=args.width, n_heads=args.heads, tie_embeddings=args.tie_embeddings)
    return shape_for_params(args.params, vocab_size=vocab_size, context_length=args.context,
                            tie_embeddings=args.tie_embeddings)


def cmd_train(args) -> int:
    from lm.data import CorpusConfig, prepare_corpus
    from lm.optim import Schedule
    from lm.train import TrainConfig, train

    corpus_config = CorpusConfig(**_given(source=args.corpus, text_field=args.text_field, vocab_size=args.vocab_size),
                                 max_bytes=args.max_bytes or None)
    # checked before the corpus is tokenized, so a bad option fails at once
    schedule = Schedule(**_given(kind=args.schedule, warmup_fraction=args.warmup, cooldown_fraction=args.cooldown))
    if not args.json:
        print(f"preparing corpus {corpus_config.source!r} (vocab {corpus_config.vocab_size}) ...", file=sys.stderr,
              flush=True)
    corpus = prepare_corpus(corpus_config, cache_dir=args.cache_dir)
    model = _model_config(args, corpus.vocab_size)
    config = TrainConfig(
        model=model, tokens=int(args.tokens), batch_size=args.batch_size, lr=args.lr,
        schedule=schedule,
        **_given(seed=args.seed), device=args.device, precision=args.precision, compile=args.compile,
        threads=args.threads,
    )
    from lm.accounting import param_counts, training_memory

    counts = param_counts(model)
    if not args.json:
        print(f"model: {model.n_layers} layers, d_model {model.d_model}, {model.n_heads} heads, d_ff {model.d_ff};"
              f" N = {counts.non_embedding:,} non-embedding / {counts.total:,} total parameters", file=sys.stderr)
        print(f"training {config.steps} steps × {config.tokens_per_step} tokens on {corpus.train.size:,} train tokens",
              file=sys.stderr, flush=True)

    def progress(point, total):
        if args.json or point.val_loss is None:  # one line per validation, about five a run
            return
        val = f"  val {point.val_loss:.4f}"
        print(f"  step {point.step:>6}/{total}  train {point.train_loss:.4f}{val}  lr {point.lr:.2e}",
              file=sys.stderr, flush=True)

    result = train(config, corpus, checkpoint_dir=args.checkpoint_dir, checkpoint_every=args.checkpoint_every,
                   on_progress=progress)
    summary = {
        "status": result.status, "message": result.message,
        "N_non_embedding": counts.non_embedding, "N_total": counts.total, "D": result.tokens, "flops": result.flops,
        "train_loss": result.final_train_loss, "val_loss": result.final_val_loss,
        "unigram_entropy": corpus.unigram_entropy("val"),
        "wall_seconds": result.wall_seconds, "tokens_per_second": result.tokens_per_second, "mfu": result.mfu,
        "device": result.device, "precision": result.precision,
        "memory_bytes": training_memory(model, batch_size=args.batch_size, precision=result.precision).to_dict(),
    }
    if args.sample and corpus.tokenizer is not None and result.status == "completed":
        summary["sample"] = _sample(args, config, corpus)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _print_summary(summary)
    return 0 if result.status == "completed" else 1


def _sample(args, config, corpus) -> str:
    """Greedy continuation of a short prompt from the final checkpoint's weights, when one was written."""
    from pathlib import Path


    from lm import checkpoint
    from lm.generate import generate
    from lm.model import Transformer

    if not args.checkpoint_dir:
        return "(pass --checkpoint-dir to keep the weights and sample from them)"
    state = checkpoint.load(Path(args.checkpoint_dir) / checkpoint.FILENAME)
    model = Transformer(config.model)
    model.load_state_dict(state["model"])
    prompt = corpus.tokenizer.encode("def ")
    out = generate(model, prompt, args.sample, temperature=0.0, stop_token=corpus.tokenizer.eot_id)
    return corpus.tokenizer.decode_text(prompt + out)


def _print_summary(s: dict) -> None:
    val = f"{s['val_loss']:.4f}" if s["val_loss"] is not None else "n/a"
    print(f"status          {s['status']} ({s['message']})")
    print(f"parameters      N = {s['N_non_embedding']:,} non-embedding, {s['N_total']:,} total")
    print(f"tokens          D = {s['D']:,}   compute C = {s['flops']:.3e} FLOPs (exact count)")
    print(f"loss            train {s['train_loss']:.4f}   validation {val} nats/token"
          f"   (unigram entropy {s['unigram_entropy']:.4f})")
    print(f"speed           {s['tokens_per_second']:,.0f} tokens/s   MFU {s['mfu']:.1%}   {s['wall_seconds']:.1f} s on {s['device']}")
    if "sample" in s:
        print("sample          " + s["sample"].replace("\n", "\n                "))


def cmd_shape(args) -> int:
    from lm.accounting import param_counts, training_flops_per_token, training_memory
    from lm.shapes import shape_for_params

    cfg = shape_for_params(args.params, vocab_size=args.vocab_size, context_length=args.context,
                           convention=args.convention)
    counts = param_counts(cfg)
    out = {
        "n_layers": cfg.n_layers, "d_model": cfg.d_model, "n_heads": cfg.n_heads, "d_ff": cfg.d_ff,
        "params": counts.to_dict(),
        "train_flops_per_token": {c: training_flops_per_token(cfg, c) for c in ("exact", "6N_non_embedding", "6N_with_head", "6N_total")},
        "memory_bytes_per_batch_size": {p: training_memory(cfg, batch_size=args.batch_size, precision=p).to_dict() for p in ("fp32", "bf16")},
    }
    print(json.dumps(out, indent=2))
    return 0


def cmd_study(args) -> int:
    from scaling.study import run_study  # noqa: PLC0415
    from scaling.sweep_cli import launch_progress_printer  # noqa: PLC0415
    from sweeps.config import load_sweep  # noqa: PLC0415
    from sweeps.launch import RayUnavailableError  # noqa: PLC0415

    config = load_sweep(args.file)
    out = args.out or str(Path("studies") / config.name)
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    try:
        result = run_study(config, store=args.store, out_dir=out, address=args.address, n_bootstrap=args.bootstrap,
                           validation_multiples=args.validation_multiples, predictor=args.predictor,
                           on_progress=launch_progress_printer(config.name), log=log)
    except RayUnavailableError as e:  # the same line and exit status as `scaling sweep launch`
        print(f"\nscaling study: error: {e}", file=sys.stderr)
        return 3
    _print_study(result.summary)
    print(f"report: {result.report_path}  (also {result.html_path.name}, {result.summary_path.name})")
    return 0 if all(v.actual_loss is not None for v in result.summary.validations) else 1


def _print_study(s) -> None:
    fit = s.fit
    print(f"study {s.sweep}: {s.runs.used_in_fit} runs fitted ({s.runs.trained_now} trained now, "
          f"{s.runs.already_done} reused)")
    for number, exponents in fit.exponents().items():
        law = (fit.approach1, fit.approach2, fit.approach3)[number - 1]
        print(f"  approach {number}: N_opt ∝ C^{exponents['a']:.3f}, D_opt ∝ C^{exponents['b']:.3f}"
              + ("" if law.success else "  (did not converge cleanly; see report)"))
    if fit.approach3 is not None:
        a3 = fit.approach3
        print(f"  L(N, D) = {a3.E:.3f} + {a3.A:.4g}/N^{a3.alpha:.3f} + {a3.B:.4g}/D^{a3.beta:.3f}")
    if fit.frontier is not None:
        floor = f"{fit.frontier.E:.3f} + " if fit.frontier.has_floor else ""
        print(f"  loss frontier L_opt(C) = {floor}{fit.frontier.G:.4g}·C^-{fit.frontier.gamma:.4f}")
    headline = s.validations[0].design.headline
    print(f"  headline predictor: {headline.name} ({headline.reason})")
    record = s.prediction.record
    print(f"prediction.json: recorded {record.created_at} (fit sha256 {record.fit_sha256[:12]}, {s.prediction.action}) "
          f"before the validation runs trained")
    for multiple, v in zip(s.validation_multiples, s.validations):
        _print_validation(multiple, v)


def _print_validation(multiple: float, v) -> None:
    if v.actual_loss is None:
        print(f"validation at C = {v.design.budget:.3g} ({multiple:g}×): no loss ({v.status}: {v.error})")
        return
    print(f"validation at C = {v.design.budget:.3g} ({multiple:g}×): N = {v.n:,}, D = {v.d:,}, seed "
          f"{v.design.spec.seed}, actual loss {v.actual_loss:.4f}")
    if v.trained_after_prediction is False:
        print("  note: trained before this prediction was recorded: not a test fixed in advance")
    for c in v.comparisons:
        lo, hi = c.predicted.interval
        label = {"frontier": "loss frontier", "approach3": "approach 3"}[c.predictor]
        mark = "  <- headline" if c is v.headline else ""
        interval = f" [{lo:.4f}, {hi:.4f}]" if c.predicted.has_interval else ""
        print(f"  {label:<13} predicted {c.predicted.value:.4f}{interval}, error {c.relative_error:+.2%}, "
              f"{c.verdict}{mark}")
    if v.shape_note:
        print(f"  note: {v.shape_note}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scaling", description=__doc__.splitlines()[0].rstrip(":") + ".",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.description = ("scaling-lab: train sweeps of small language models, fit scaling laws, "
                          "and predict large runs.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    from scaling import analysis_cli, sweep_cli

    _add_train_command(sub)
    _add_shape_command(sub)
    sweep_cli.register(sub)
    analysis_cli.register(sub)
    _add_study_command(sub, default_store=sweep_cli.default_store())
    return parser


def _add_train_command(sub) -> None:
    """`scaling train`: one model, trained here, its result printed."""
    p = sub.add_parser("train", help="train one model on a corpus and print its result",
                       description="Train one model (built-in corpus by default) and print its result.")
    _add_model_args(p)
    _add_corpus_args(p)
    g = p.add_argument_group("training")
    g.add_argument("--tokens", type=float, default=1e6, help="training tokens D (default 1e6)")
    g.add_argument("--batch-size", type=int, default=16, help="sequences per step (default 16)")
    g.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (default 3e-3)")
    # defaults None: lm.optim.Schedule and lm.train.TrainConfig declare them (both import torch, which --help
    # should not wait for)
    g.add_argument("--schedule", choices=("cosine", "wsd", "constant"),
                   help="learning-rate schedule (default: Schedule's, cosine)")
    g.add_argument("--warmup", type=float, help="warmup as a fraction of steps (default: Schedule's)")
    g.add_argument("--cooldown", type=float, help="wsd cooldown fraction (default: Schedule's)")
    g.add_argument("--seed", type=int, help="initialisation and batch order (default: TrainConfig's)")
    g.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:1, ...")
    g.add_argument("--precision", choices=PRECISION_CHOICES, default="auto")
    g.add_argument("--compile", action="store_true", help="torch.compile the model")
    g.add_argument("--threads", type=int, help="torch CPU threads")
    g.add_argument("--checkpoint-dir", help="write checkpoints here and resume from one found here")
    g.add_argument("--checkpoint-every", type=int, default=0, help="steps between checkpoints (default: end only)")
    g.add_argument("--sample", type=int, default=0, metavar="K", help="after training, greedily generate K tokens")
    g.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_train)


def _add_shape_command(sub) -> None:
    """`scaling shape`: the shape and accounting for a target N."""
    p = sub.add_parser("shape", help="the model shape, parameter groups, FLOPs and memory for a target N",
                       description="Print the shape that hits a target parameter count, with its accounting.")
    p.add_argument("params", type=float, help="target parameter count")
    p.add_argument("--convention", choices=N_CONVENTIONS, default=DEFAULT_N_CONVENTION,
                   help=f"the N convention --params counts (default {DEFAULT_N_CONVENTION}, as everywhere)")
    p.add_argument("--vocab-size", type=int, default=1024)
    p.add_argument("--context", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=16, help="for the memory estimate")
    p.set_defaults(func=cmd_shape)


def _add_study_command(sub, *, default_store: str) -> None:
    """`scaling study`: sweep, fit, predict and validate on larger budgets."""
    p = sub.add_parser("study", help="sweep, fit, plot, and check the prediction on runs the fit never saw",
                       description="Run a sweep (reusing finished runs), fit every scaling law with bootstrap "
                                   "intervals, write down the prediction (prediction.json), then train validation "
                                   "runs at the predicted compute-optimal N and D for larger budgets, plot, and "
                                   "report predicted vs actual.")
    p.add_argument("file", help="sweep file (YAML) or preset name (e.g. demo)")
    p.add_argument("--address", help="join an existing Ray cluster (default: a private local Ray)")
    p.add_argument("--store", default=default_store, help="run store directory (default ./runs)")
    p.add_argument("--out", help="report folder (default ./studies/<sweep name>)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--predictor", choices=("auto", "frontier", "approach3"), default="auto",
                   help="which law designs and predicts the validation run: auto (default: the one that erred less "
                        "on the sweep's own largest budget held out, ties to Approach 3, as `scaling predict` "
                        "chooses), the loss frontier through Approach 2's minima, or Approach 3's L(N, D). "
                        "Both predictions are reported.")
    p.add_argument("--validation-multiples", type=float, nargs="+", metavar="M",
                   help="validation budgets as multiples of the largest sweep budget, each > 1 (default: the "
                        "sweep file's validation.multiples, else 4 10)")
    p.set_defaults(func=cmd_study)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from analysis.prediction import NoFitError  # noqa: PLC0415 (a small module: numpy only)

    try:
        return args.func(args)
    except NoFitError as e:  # the input was read, but no law could be fitted to it
        print(f"scaling {args.command}: {e}", file=sys.stderr)
        return EXIT_NO_FIT
    except (UserError, ValueError, FileNotFoundError) as e:
        print(f"scaling {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"scaling {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
