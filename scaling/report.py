"""The study's report: report.md, a self-contained report.html (plots inlined), and summary.json.

The report is built once as a list of blocks (headings, paragraphs, tables, images) and rendered twice,
so the Markdown and the HTML always say the same thing. All three files are written atomically.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from analysis.table import write_text_atomic


PREDICTORS = {"frontier": "loss frontier (Approach 2)", "approach3": "Approach 3 L(N, D)"}


def _fmt(value, spec: str = ".4g") -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return format(value, spec)
    return str(value)


def _interval(values, spec: str = ".3g") -> str:
    if not values or any(v is None for v in values):
        return "–"
    return f"[{format(values[0], spec)}, {format(values[1], spec)}]"


def _blocks(s: dict) -> list[tuple]:
    fits, v = s["fits"], s["validation"]
    blocks: list[tuple] = [("h1", f"Scaling study: {s['sweep']}")]
    blocks.append(("p", f"Sweep file {s['source']}; store {s['store']}. {s['runs']['planned']} runs planned, "
                        f"{s['runs']['used_in_fit']} used in the fit ({s['runs']['trained_now']} trained by this "
                        f"study, {s['runs']['already_done']} reused). N counts `{s['n_convention']}` parameters; "
                        f"C = 6·N·D FLOPs; loss is validation cross-entropy in nats per token. "
                        f"Intervals are {fits['level']:.0%} bootstrap intervals over runs "
                        f"({fits['n_bootstrap']} resamples)."))

    blocks.append(("h2", "Validation: a run the fit never saw"))
    if v.get("predicted_loss") is None:
        blocks.append(("p", f"The validation run did not produce a comparable loss (status {v['status']}: "
                            f"{v.get('error')})."))
    else:
        verdict = "inside" if v["inside_interval"] else "outside"
        blocks.append(("p", f"At C = {v['budget']:.3g} FLOPs ({s['validation_factor']}× the largest sweep budget) the "
                            f"fit ({v['n_opt_from']}) predicted N_opt = {v['n_opt_predicted']:.4g}; the model built "
                            f"for it has N = {v['n']:,} ({v['shape']['n_layers']} layers × {v['shape']['d_model']}, "
                            f"{v['shape']['n_heads']} heads) and trained on D = {v['d']:,} tokens with lr "
                            f"{v['lr']:.3g} (from the {v['lr_from']}). Predicted loss ({PREDICTORS[v['predicted_by']]}) "
                            f"{v['predicted_loss']:.4f}, actual {v['actual_loss']:.4f}: error "
                            f"{v['relative_error']:+.2%}, {verdict} the prediction interval "
                            f"{_interval(v['interval'], '.4f')}. Which law designs and predicts the run is fixed "
                            f"before it trains; both predictors are shown."))
    if v.get("shape_note"):
        blocks.append(("p", f"Note: {v['shape_note']}."))
    blocks.append(("table", ["predictor", "budget", "n", "d", "predicted_loss", "interval", "actual_loss",
                             "relative_error", "inside_interval"],
                   [[PREDICTORS[name] + (" (headline)" if name == v.get("predicted_by") else ""), _fmt(v["budget"], ".3g"),
                     _fmt(v["n"], ","), _fmt(v["d"], ","), _fmt(p["predicted_loss"]), _interval(p["interval"], ".4f"),
                     _fmt(v["actual_loss"]), _fmt(p["relative_error"], "+.2%"), _fmt(p["inside_interval"])]
                    for name, p in (v.get("by_predictor") or {}).items()]))

    blocks.append(("h2", "Fits"))
    a3 = fits.get("approach3")
    if a3:
        blocks.append(("p", f"Approach 3, L(N, D) = E + A/N^α + B/D^β (Hoffmann et al. 2022): {a3['message']}"))
        names = ["E", "A", "B", "alpha", "beta", "a", "b"]
        blocks.append(("table", ["parameter", "estimate", "interval"],
                       [[n, _fmt(a3[n]), _interval(a3[f"{n}_interval"])] for n in names]))
    exponent_rows = []
    for key, label in (("approach1", "1 (training-curve envelope)"), ("approach2", "2 (IsoFLOP profiles)"),
                       ("approach3", "3 (parametric)")):
        f = fits.get(key)
        if f:
            exponent_rows.append([label, _fmt(f["a"], ".3f"), _interval(f["a_interval"]), _fmt(f["b"], ".3f"),
                                  _interval(f["b_interval"]), _fmt(f["success"])])
    blocks.append(("p", "Exponents of N_opt ∝ C^a and D_opt ∝ C^b from each approach, side by side "
                        "(Chinchilla's three approaches gave a = 0.50, 0.49, 0.46):"))
    blocks.append(("table", ["approach", "a", "a interval", "b", "b interval", "converged"], exponent_rows))
    if fits.get("consistency"):
        blocks.append(("p", "Agreement: " + fits["consistency"]["message"]))
    a2 = fits.get("approach2")
    if a2:
        blocks.append(("p", "IsoFLOP profiles (Approach 2), one parabola in log N per budget:"))
        blocks.append(("table", ["budget", "runs", "N_opt", "N_opt interval", "loss at N_opt", "status", "used"],
                       [[_fmt(b["budget"], ".3g"), _fmt(b["n_runs"]), _fmt(b["n_opt"], ".4g"),
                         _interval(b["n_opt_interval"]), _fmt(b["loss_opt"]), b["status"], _fmt(b["included"])]
                        for b in a2["budgets"]]))
    frontier = fits.get("frontier")
    if frontier:
        blocks.append(("p", f"Loss frontier through those minima, L_opt(C) = G·C^-γ (for a run off N_opt, "
                            f"× (1 + κ·(ln N − ln N_opt)²)): G = {_fmt(frontier['G'])}, γ = {_fmt(frontier['gamma'], '.4f')} "
                            f"{_interval(frontier['gamma_interval'], '.4f')}, κ = {_fmt(frontier['kappa'], '.3g')}. "
                            f"{frontier['message']}"))
    for name, label in (("lr_law", "learning rate"), ("batch_size_law", "batch size")):
        law = fits.get(name)
        if law:
            blocks.append(("p", f"Optimal {label} = k·C^p: k = {_fmt(law['k'])} {_interval(law['k_interval'])}, "
                                f"p = {_fmt(law['p'], '.3f')} {_interval(law['p_interval'])}. {law['message']}"))
    if fits.get("skipped"):
        blocks.append(("p", "Not fitted: " + "; ".join(f"{k}: {r}" for k, r in fits["skipped"].items())))
    for warning in s.get("fit_warnings", []):
        blocks.append(("p", f"Warning: {warning}"))

    blocks.append(("h2", "Predictions"))
    rows = []
    for label, p in s["predictions"].items():
        for key, name in (("approach2", "2 + frontier"), ("approach3", "3")):
            a = p.get(key) or {}
            if a:
                rows.append([label, _fmt(p["compute"], ".3g"), name, _fmt(a.get("n_opt"), ".4g"),
                             _interval(a.get("n_opt_interval")), _fmt(a.get("d_opt"), ".4g"),
                             _fmt(a.get("tokens_per_param"), ".3g"), _fmt(a.get("loss")),
                             _interval(a.get("loss_interval"), ".4f"), _fmt(p.get("lr"), ".3g")])
    blocks.append(("p", "The compute-optimal allocation and its loss at budgets beyond the sweep (× its largest "
                        "budget), from Approach 2 with the loss frontier and from Approach 3. The frontier's loss "
                        "intervals carry the runs' noise only, and the frontier has no floor: far beyond the sweep, "
                        "where losses near their floor, it predicts too low; Approach 3's E is that floor:"))
    blocks.append(("table", ["budget", "C", "approach", "N_opt", "interval", "D_opt", "D/N", "loss", "loss interval",
                             "lr"], rows))

    bt = fits.get("backtest")
    if bt:
        blocks.append(("h2", "Backtest"))
        blocks.append(("p", "Fitted without the largest budget, predicting its runs: " + bt["message"]))
        rows = [[PREDICTORS[name], p["key"], _fmt(p["compute"], ".3g"), _fmt(p["actual"]), _fmt(p["predicted"]),
                 _fmt(p["rel_error"], "+.2%"), _interval(p["interval"], ".4f"), _fmt(p["inside_interval"])]
                for name, key in (("frontier", "frontier_loss_predictions"), ("approach3", "loss_predictions"))
                for p in bt.get(key, [])]
        blocks.append(("table", ["predictor", "run", "C", "actual", "predicted", "rel. error", "interval", "inside"], rows))

    blocks.append(("h2", "Plots"))
    for plot in s["plots"]:
        if plot.endswith(".png"):
            blocks.append(("img", plot, Path(plot).stem.replace("_", " ")))
    t = s["timings"]
    blocks.append(("p", f"Time: sweep {t['sweep_seconds']:.0f} s, fit {t['fit_seconds']:.0f} s, plots "
                        f"{t['plot_seconds']:.0f} s, validation run {t['validation_seconds']:.0f} s; "
                        f"total {t['total_seconds']:.0f} s."))
    return blocks


def _markdown(blocks) -> str:
    out = []
    for block in blocks:
        kind = block[0]
        if kind == "h1":
            out.append(f"# {block[1]}\n")
        elif kind == "h2":
            out.append(f"## {block[1]}\n")
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
        if kind in ("h1", "h2"):
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


def write_report(summary: dict, out_dir: str | Path) -> dict[str, Path]:
    """Write report.md, report.html and summary.json into out_dir; return their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    blocks = _blocks(summary)
    paths = {"md": out_dir / "report.md", "html": out_dir / "report.html", "json": out_dir / "summary.json"}
    write_text_atomic(paths["json"], json.dumps(summary, indent=1, allow_nan=False))
    write_text_atomic(paths["md"], _markdown(blocks))
    write_text_atomic(paths["html"], _html(blocks, out_dir))
    return paths
