"""The study's report: report.md, a self-contained report.html (plots inlined), and summary.json.

The report is built once as a list of blocks (headings, paragraphs, tables, images) and rendered twice,
so the Markdown and the HTML always say the same thing. All three files are written atomically.
"""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path

from analysis.prediction import PREDICTOR_NAMES
import atomicio
from scaling.noise_report import noise_blocks
from scaling.study import StudySummary


def _fmt(value, spec: str = ".4g") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return format(value, spec)
    return str(value)


def _interval(values, spec: str = ".3g") -> str:
    if not values or any(v is None or not math.isfinite(v) for v in values):
        return "–"
    return f"[{format(values[0], spec)}, {format(values[1], spec)}]"


def _blocks(s: StudySummary) -> list[tuple]:
    fit = s.fit
    blocks: list[tuple] = [("h1", f"Scaling study: {s.sweep}")]
    blocks.append(("p", f"Sweep file {s.source}; store {s.store}. {s.runs.planned} runs planned, "
                        f"{s.runs.used_in_fit} used in the fit ({s.runs.trained_now} trained by this "
                        f"study, {s.runs.already_done} reused). N counts `{s.n_convention}` parameters; "
                        f"C = {'exact training FLOPs (attention and head included)' if s.compute == 'exact' else '6·N·D FLOPs'}; "
                        f"loss is validation cross-entropy in nats per token. "
                        f"Intervals are {fit.level:.0%} bootstrap intervals over runs "
                        f"({fit.n_bootstrap} resamples)."))
    return (blocks + _validation_blocks(s) + _fit_blocks(fit) + noise_blocks(fit.noise_floor) + _prediction_blocks(s)
            + _backtest_blocks(fit) + _plot_blocks(s))


def _validation_blocks(s: StudySummary) -> list[tuple]:
    record = s.prediction.record
    blocks: list[tuple] = [("h2", "Validation: runs the fit never saw")]
    replaced = f" An earlier prediction was replaced ({s.prediction.message})." if s.prediction.action == "replaced" else ""
    blocks.append(("p", f"What follows was predicted before any validation run trained: prediction.json, recorded "
                        f"{record.created_at} (UTC), fit sha256 {record.fit_sha256}, headline "
                        f"{PREDICTOR_NAMES.get(record.headline.predictor, record.headline.predictor)}; each run's "
                        f"seed ({', '.join(sorted({str(r.seed) for r in record.runs}))}) is one no sweep run used."
                        + replaced))
    for multiple, v in zip(s.validation_multiples, s.validations):
        blocks.extend(_one_validation(multiple, v))
    return blocks


def _one_validation(multiple: float, v) -> list[tuple]:
    design, headline = v.design, v.headline
    blocks: list[tuple] = [("h3", f"At {multiple:g}× the largest budget")]
    if v.trained_after_prediction is False:
        blocks.append(("p", "Note: this run had been trained before the prediction above was recorded, so it is "
                            "not a test fixed in advance."))
    if headline is None and v.actual_loss is not None:
        blocks.append(("p", f"At C = {design.budget:.3g} FLOPs the run was built at {design.prediction.best.name}'s "
                            f"N_opt = {design.n_opt_predicted:.4g}, and its actual loss is {v.actual_loss:.4f}; "
                            f"no loss law was fitted cleanly ({design.headline.reason}), so no headline "
                            f"prediction exists, and any comparison below comes from a fit that did not converge."))
    elif headline is None:
        blocks.append(("p", f"The validation run did not produce a comparable loss (status {v.status}: {v.error})."))
    else:
        spec = design.spec
        interval = _interval(headline.predicted.interval, '.4f')
        if headline.inside_interval is not None:
            verdict = f"{'inside' if headline.inside_interval else 'outside'} the prediction interval {interval}"
        elif headline.predicted.has_interval:
            verdict = f"with an unreliable interval {interval} (most bootstrap replicates dropped), not scored"
        else:
            verdict = "with no prediction interval"
        blocks.append(("p", f"At C = {design.budget:.3g} FLOPs ({multiple:g}× the largest sweep budget) the "
                            f"fit ({design.prediction.best.name}) predicted N_opt = {design.n_opt_predicted:.4g}; the "
                            f"model built for it has N = {v.n:,} ({spec.n_layers} layers × {spec.d_model}, "
                            f"{spec.n_heads} heads, seed {spec.seed}) and trained on D = {v.d:,} tokens with lr "
                            f"{spec.lr:.3g} (from the "
                            f"{design.lr_from}). Predicted loss ({design.headline.name}) {headline.predicted.value:.4f}, "
                            f"actual {v.actual_loss:.4f}: error {headline.relative_error:+.2%}, {verdict}. The headline "
                            f"predictor was fixed before the run trained ({design.headline.reason}); both "
                            f"predictors are shown, each as recorded in prediction.json."))
    if v.shape_note:
        blocks.append(("p", f"Note: {v.shape_note}."))
    blocks.append(("table", ["predictor", "budget", "n", "d", "predicted_loss", "interval", "actual_loss",
                             "relative_error", "inside_interval"],
                   [[PREDICTOR_NAMES[c.predictor] + (" (headline)" if c is headline else ""),
                     _fmt(design.budget, ".3g"), _fmt(v.n, ","), _fmt(v.d, ","), _fmt(c.predicted.value),
                     _interval(c.predicted.interval, ".4f"), _fmt(v.actual_loss), _fmt(c.relative_error, "+.2%"),
                     "unreliable" if c.predicted.has_interval and not c.predicted.reliable else _fmt(c.inside_interval)]
                    for c in v.comparisons]))
    return blocks


def _fit_blocks(fit) -> list[tuple]:
    blocks: list[tuple] = [("h2", "Fits")]
    a3, boot = fit.approach3, fit.approach3_bootstrap
    if a3 is not None:
        blocks.append(("p", f"Approach 3, L(N, D) = E + A/N^α + B/D^β (Hoffmann et al. 2022): {a3.message}"))
        blocks.append(("table", ["parameter", "estimate", "interval"],
                       [[n, _fmt(getattr(a3, n)), _interval(boot.intervals[n] if boot else None)]
                        for n in ("E", "A", "B", "alpha", "beta", "a", "b")]))
    rows = []
    for law, label in ((fit.approach1, "1 (training-curve envelope)"), (fit.approach2, "2 (IsoFLOP profiles)")):
        if law is not None:
            rows.append([label, _fmt(law.a, ".3f"), _interval(law.a_interval), _fmt(law.b, ".3f"),
                         _interval(law.b_interval), _fmt(law.success)])
    if a3 is not None:
        rows.append(["3 (parametric)", _fmt(a3.a, ".3f"), _interval(boot.intervals["a"] if boot else None),
                     _fmt(a3.b, ".3f"), _interval(boot.intervals["b"] if boot else None), _fmt(a3.success)])
    blocks.append(("p", "Exponents of N_opt ∝ C^a and D_opt ∝ C^b from each approach, side by side "
                        "(Chinchilla's three approaches gave a = 0.50, 0.49, 0.46):"))
    blocks.append(("table", ["approach", "a", "a interval", "b", "b interval", "converged"], rows))
    if fit.consistency is not None:
        blocks.append(("p", "Agreement: " + fit.consistency.message))
    if fit.approach2 is not None:
        blocks.append(("p", "IsoFLOP profiles (Approach 2), one parabola in log N per budget:"))
        blocks.append(("table", ["budget", "runs", "N_opt", "N_opt interval", "loss at N_opt", "status", "used"],
                       [[_fmt(b.budget, ".3g"), _fmt(len(b.run_ids)), _fmt(b.n_opt, ".4g"), _interval(b.n_opt_interval),
                         _fmt(b.loss_opt), b.status, _fmt(b.included)] for b in fit.approach2.profiles]))
    frontier = fit.frontier
    if frontier is not None:
        floor = (f"E + G·C^-γ, with a floor E = {_fmt(frontier.E)} {_interval(frontier.E_interval)}" if frontier.has_floor
                 else "G·C^-γ, without a floor (none identified)")
        blocks.append(("p", f"Loss frontier through those minima, L_opt(C) = {floor} (for a run off N_opt, G·C^-γ "
                            f"× S(ln N − ln N_opt), S the profile's shape in Chinchilla's form, S(0) = 1, S''(0) = 2κ): "
                            f"G = {_fmt(frontier.G)}, γ = {_fmt(frontier.gamma, '.4f')} "
                            f"{_interval(frontier.gamma_interval, '.4f')}, κ = {_fmt(frontier.kappa, '.3g')}. "
                            f"{frontier.message}"))
    for law, label in ((fit.lr_law, "learning rate"), (fit.batch_law, "batch size")):
        if law is not None:
            blocks.append(("p", f"Optimal {label} = k·C^p: k = {_fmt(law.k)} {_interval(law.k_interval)}, "
                                f"p = {_fmt(law.p, '.3f')} {_interval(law.p_interval)}. {law.message}"))
    if fit.lr_horizon_law is not None and fit.lr_horizon_law.success:
        h = fit.lr_horizon_law
        blocks.append(("p", f"Optimal learning rate against size and horizon, k·N^p_N·D^p_D (Bjorck et al. 2024): "
                            f"k = {_fmt(h.k)}, p_N = {_fmt(h.p_N, '.3f')} {_interval(h.p_N_interval)}, "
                            f"p_D = {_fmt(h.p_D, '.3f')} {_interval(h.p_D_interval)}. {h.message}"))
    blocks.extend(("p", f"Unreliable: {sentence}; do not read them as {fit.level:.0%} intervals.")
                  for sentence in fit.unreliable_intervals())
    if fit.headline is not None:
        blocks.append(("p", f"Headline predictor: {fit.headline.name}: {fit.headline.reason}."))
    if fit.skipped:
        blocks.append(("p", "Not fitted: " + "; ".join(f"{k}: {r}" for k, r in fit.skipped)))
    blocks.extend(("p", f"Warning: {warning}") for warning in fit.warnings)
    return blocks


def _prediction_blocks(s: StudySummary) -> list[tuple]:
    rows, warnings = [], []
    for factor, p in s.predictions:
        for a in p.allocations:
            if a.approach == "approach1":
                continue
            rows.append([f"{factor:g}×", _fmt(p.compute, ".3g"), a.name + (" (headline)" if a is p.best else ""),
                         _fmt(a.n_opt.value, ".4g"), _interval(a.n_opt.interval), _fmt(a.d_opt.value, ".4g"),
                         _fmt(a.tokens_per_param.value, ".3g"), _fmt(a.loss.value), _interval(a.loss.interval, ".4f"),
                         _fmt(p.lr.value, ".3g")])
        warnings.extend(p.warnings)
    blocks = [("h2", "Predictions"),
              ("p", "The compute-optimal allocation and its loss at budgets beyond the sweep (× its largest budget): "
                    "Approach 2 with the loss frontier's loss, and Approach 3. Far beyond the sweep the law's form, "
                    "not the runs, sets the answer; the warnings below say where a prediction passed a fitted floor."),
              ("table", ["budget", "C", "approach", "N_opt", "interval", "D_opt", "D/N", "loss", "loss interval", "lr"],
               rows)]
    return blocks + [("p", f"Warning: {w}") for w in dict.fromkeys(warnings)]


def _backtest_blocks(fit) -> list[tuple]:
    bt = fit.backtest
    if bt is None:
        return []
    rows = [[PREDICTOR_NAMES[name], p.key, _fmt(p.compute, ".3g"), _fmt(p.actual), _fmt(p.predicted),
             _fmt(p.rel_error, "+.2%"), _interval(p.interval, ".4f"),
             _fmt(p.inside_interval) if p.reliable else "unreliable"]
            for name, predictions in (("frontier", bt.frontier_loss_predictions), ("approach3", bt.loss_predictions))
            for p in predictions]
    return [("h2", "Backtest"), ("p", "Fitted without the largest budget, predicting its runs: " + bt.message),
            ("table", ["predictor", "run", "C", "actual", "predicted", "rel. error", "interval", "inside"], rows)]


def _plot_blocks(s: StudySummary) -> list[tuple]:
    blocks: list[tuple] = [("h2", "Plots")]
    blocks += [("img", plot, Path(plot).stem.replace("_", " ")) for plot in s.plots if plot.endswith(".png")]
    t = s.timings
    blocks.append(("p", f"Time: sweep {t['sweep_seconds']:.0f} s, fit {t['fit_seconds']:.0f} s, plots "
                        f"{t['plot_seconds']:.0f} s, validation runs {t['validation_seconds']:.0f} s; "
                        f"total {t['total_seconds']:.0f} s."))
    return blocks


def _markdown(blocks) -> str:
    out = []
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2", "h3"):
            out.append("#" * int(kind[1]) + f" {block[1]}\n")
        elif kind == "p":
            out.append(block[1] + "\n")
        elif kind == "table":
            header, rows = block[1], block[2]
            out.append("| " + " | ".join(header) + " |")
            out.append("|" + "---|" * len(header))
            out.extend("| " + " | ".join(row) + " |" for row in rows)
            out.append("")
        elif kind == "img":
            out.append(f"![{block[2]}]({block[1]})\n")
    return "\n".join(out)


def _html(blocks, out_dir: Path) -> str:
    body = []
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2", "h3"):
            body.append(f"<{kind}>{html.escape(block[1])}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{html.escape(block[1])}</p>")
        elif kind == "table":
            head = "".join(f"<th>{html.escape(h)}</th>" for h in block[1])
            rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in block[2])
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif kind == "img":
            data = base64.b64encode((out_dir / block[1]).read_bytes()).decode("ascii")
            body.append(f'<figure><img alt="{html.escape(block[2])}" src="data:image/png;base64,{data}">'
                        f"<figcaption>{html.escape(block[2])}</figcaption></figure>")
    style = ("body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}"
             "th{background:#f3f3f3}img{max-width:100%}figcaption{color:#666;font-size:.9em}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(blocks[0][1])}</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")


def write_report(summary: StudySummary, out_dir: str | Path) -> dict[str, Path]:
    """Write report.md, report.html and summary.json into out_dir; return their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    blocks = _blocks(summary)
    paths = {"md": out_dir / "report.md", "html": out_dir / "report.html", "json": out_dir / "summary.json"}
    atomicio.write_text(paths["json"], json.dumps(summary.to_dict(), indent=1, allow_nan=False))
    atomicio.write_text(paths["md"], _markdown(blocks))
    atomicio.write_text(paths["html"], _html(blocks, out_dir))
    return paths
