"""A self-contained HTML report of one run (plots inlined as base64 PNG; opens offline)."""

from __future__ import annotations

import base64
import html
import io

from pathlib import Path

import numpy as np
import pandas as pd

from steerkit._io import write_text
from steerkit.diagnostics import plot_best_so_far, plot_search_landscape
from steerkit.run_summary import RunSummary

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0} td,th{border:1px solid #ddd;padding:.35em .6em;vertical-align:top;text-align:left}
th{background:#f4f4f4} .num{text-align:right;font-variant-numeric:tabular-nums}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:1em} img{max-width:100%;border:1px solid #eee}
.answers td{width:25%;font-size:.92em} .muted{color:#777} .best{background:#eef8ee}
"""


def _png_tag(png: bytes, alt: str) -> str:
    """An ``<img>`` holding the PNG ``png`` inline."""
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _figure_tag(figure, alt: str) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return _png_tag(buffer.getvalue(), alt)


def _landscape(trials: pd.DataFrame):
    """The search landscape (layer × coefficient) of a run's trials table."""
    layer = next(column for column in trials if column.endswith("layer"))
    coefficient = next(column for column in trials if column.endswith("coefficient"))
    return plot_search_landscape(trials.rename(columns={"score": "mean_test_score"}), x=layer, y=coefficient)


def _table(frame: pd.DataFrame, *, highlight: str | None = None, digits: int = 1) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in [frame.index.name or ""] + list(frame.columns))
    rows = []
    for index, row in frame.iterrows():
        cells = "".join(
            f'<td class="num">{v:.{digits}f}</td>' if isinstance(v, (float, np.floating)) else f"<td>{html.escape(str(v))}</td>"
            for v in row
        )
        css = ' class="best"' if highlight is not None and index == highlight else ""
        rows.append(f"<tr{css}><th>{html.escape(str(index))}</th>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def render_report(summary: RunSummary) -> str:
    """The report of one run as one HTML string, drawn from ``summary`` alone."""
    e = html.escape
    rec, stats, best = summary.recommendation, summary.statistics, summary.best
    held = summary.held_out[["utility", "concept", "coherence"]].copy()
    held.index.name = "held-out questions"
    verdict = held.loc["steered", "utility"] - held.loc["unsteered", "utility"]
    stat_rows = pd.DataFrame({"value": {
        "best PL alignment (layer)": f"{stats['alignment_pl_max']:.3f} ({stats['alignment_pl_best_layer']})",
        "granularity G": f"{stats['granularity']:.2f}",
        "magnitude CV": f"{stats['magnitude_cv']:.2f}",
        "PL/RA correlation": f"{stats['pl_ra_correlation']:.2f}",
        "block structure share": f"{stats['block_structure_share']:.0%}",
        "ANOVA η² prompt / question / interaction": f"{stats['eta2_prompt']:.2f} / {stats['eta2_question']:.2f} / {stats['eta2_interaction']:.2f}",
        "contrasts (kept by the judge filter)": f"{summary.filter['kept']} of {summary.filter['contrasts']}",
    }})
    stat_rows.index.name = "statistic"
    diag = "".join(_png_tag(png, Path(name).stem) for name, png in summary.figures.items())
    landscape = _figure_tag(_landscape(summary.trials), "search landscape")
    convergence = _figure_tag(plot_best_so_far({"geometry-guided TPE": [summary.trials["score"].to_numpy()]}),
                              "best so far")
    answer_rows = "".join(
        f"<tr><td>{e(r.question)}</td><td>{e(r.unsteered)}</td><td>{e(r.prompting)}</td><td>{e(r.steered)}</td></tr>"
        for r in summary.answers.itertuples()
    )
    timings = ", ".join(f"{k.replace('_', ' ')} {v:.0f} s" for k, v in summary.timings_s.items())
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>steerkit: {e(summary.concept)}</title>
<style>{CSS}</style></head><body>
<h1>steerkit report: {e(summary.concept)}</h1>
<p class="muted">{e(summary.description)}<br>model {e(summary.model)} ({e(summary.dtype)}), seed {summary.settings.seed},
{summary.settings.budget} TPE trials; {e(timings)}.</p>

<h2>Does steering work?</h2>
<p>Best configuration: <b>{e(best['construction'])}</b> at layer <b>{best['layer']}</b>, coefficient
<b>{best['coefficient']:g}</b> (search utility {best['search_utility']:.1f}, reached 95% of it after {best['trials_to_95']} trials).
On {summary.n_held_out} held-out questions its utility is <b>{verdict:+.1f}</b> points against the unsteered model.</p>
{_table(held, highlight="steered")}
<p class="muted">Utility = (concept + coherence) / 2 on 0–100; concept from an embedding classifier trained on this
concept's own positive/negative answers, coherence from the unsteered model's likelihood with a repetition penalty.</p>

<h2>Why this configuration: the GRACE recommendation</h2>
<p>Construction <b>{e(rec['construction'])}</b>, search space <b>{e(rec['search_space'])}</b>
({len(rec['layers'])} layers: {e(', '.join(map(str, rec['layers'])))}).</p>
<ul>{''.join(f'<li>{e(r)}</li>' for r in rec['reasons'])}</ul>
{_table(stat_rows)}
<div class="grid">{diag}</div>

<h2>Search</h2>
<div class="grid">{landscape}{convergence}</div>

<h2>Answers to held-out questions</h2>
<table class="answers"><tr><th>question</th><th>unsteered</th><th>prompting</th><th>steered</th></tr>{answer_rows}</table>
</body></html>
"""


def write_report(path, summary: RunSummary) -> None:
    """Render :func:`render_report` of ``summary`` and write it atomically to ``path``."""
    write_text(path, render_report(summary))
