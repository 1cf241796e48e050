"""A self-contained HTML report of one run (plots inlined as base64 PNG; opens offline)."""

from __future__ import annotations

import base64
import html
import io

import numpy as np
import pandas as pd

from steerkit._io import write_text
from steerkit.diagnostics import plot_best_so_far, plot_search_landscape
from steerkit.report.diagnostics_files import DIAGNOSTIC_PLOTS

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0} td,th{border:1px solid #ddd;padding:.35em .6em;vertical-align:top;text-align:left}
th{background:#f4f4f4} .num{text-align:right;font-variant-numeric:tabular-nums}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:1em} img{max-width:100%;border:1px solid #eee}
.answers td{width:25%;font-size:.92em} .muted{color:#777} .best{background:#eef8ee}
"""


def _figure_tag(figure, alt: str) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    data = base64.b64encode(buffer.getvalue()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


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


def render_report(*, summary: dict, recommender, search, answers: pd.DataFrame, concept) -> str:
    """The report as one HTML string."""
    e = html.escape
    rec, stats, best = summary["recommendation"], summary["statistics"], summary["best"]
    held = pd.DataFrame(summary["held_out"]).T[["utility", "concept", "coherence"]]
    held.index.name = "held-out questions"
    verdict = held.loc["steered", "utility"] - held.loc["unsteered", "utility"]
    stat_rows = pd.DataFrame({"value": {
        "best PL alignment (layer)": f"{stats['alignment_pl_max']:.3f} ({stats['alignment_pl_best_layer']})",
        "granularity G": f"{stats['granularity']:.2f}",
        "magnitude CV": f"{stats['magnitude_cv']:.2f}",
        "PL/RA correlation": f"{stats['pl_ra_correlation']:.2f}",
        "block structure share": f"{stats['block_structure_share']:.0%}",
        "ANOVA η² prompt / question / interaction": f"{stats['eta2_prompt']:.2f} / {stats['eta2_question']:.2f} / {stats['eta2_interaction']:.2f}",
        "contrasts (kept by the judge filter)": f"{summary['filter']['kept']} of {summary['filter']['contrasts']}",
    }})
    stat_rows.index.name = "statistic"
    diag = "".join(_figure_tag(plot(recommender.report_), name) for name, plot in DIAGNOSTIC_PLOTS)
    landscape = _figure_tag(plot_search_landscape(search.cv_results_), "search landscape")
    convergence = _figure_tag(plot_best_so_far({"geometry-guided TPE": [search.history_["score"].to_numpy()]}),
                              "best so far")
    answer_rows = "".join(
        f"<tr><td>{e(r.question)}</td><td>{e(r.unsteered)}</td><td>{e(r.prompting)}</td><td>{e(r.steered)}</td></tr>"
        for r in answers.itertuples()
    )
    timings = ", ".join(f"{k.replace('_', ' ')} {v:.0f} s" for k, v in summary["timings_s"].items())
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>steerkit: {e(concept.name)}</title>
<style>{CSS}</style></head><body>
<h1>steerkit report: {e(concept.name)}</h1>
<p class="muted">{e(concept.description)}<br>model {e(summary['model'])} ({e(summary['dtype'])}), seed {summary['settings']['seed']},
{summary['settings']['budget']} TPE trials; {e(timings)}.</p>

<h2>Does steering work?</h2>
<p>Best configuration: <b>{e(best['construction'])}</b> at layer <b>{best['layer']}</b>, coefficient
<b>{best['coefficient']:g}</b> (search utility {best['search_utility']:.1f}, reached 95% of it after {best['trials_to_95']} trials).
On {summary['n_held_out']} held-out questions its utility is <b>{verdict:+.1f}</b> points against the unsteered model.</p>
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


def write_report(path, **parts) -> None:
    """Render :func:`render_report` and write it atomically to ``path``."""
    write_text(path, render_report(**parts))
