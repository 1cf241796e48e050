"""Diagnostics on disk: the per-layer table, the recommendation and the plots."""

from __future__ import annotations

from pathlib import Path

from steerkit._io import write_json, write_text
from steerkit.diagnostics import plot_alignment, plot_granularity, plot_magnitudes, plot_pair_heatmap

DIAGNOSTIC_PLOTS = (("alignment", plot_alignment), ("granularity", plot_granularity),
                    ("pair_heatmap", plot_pair_heatmap), ("magnitudes", plot_magnitudes))


def write_diagnostics(recommender, folder: Path) -> dict:
    """Write a fitted ``GraceRecommender``'s ``layers.csv``, ``diagnostics.json`` and PNG plots
    into ``folder``; return the JSON content."""
    folder = Path(folder)
    report, rec = recommender.report_, recommender.recommendation_
    write_text(folder / "layers.csv", report.layers.to_csv(index=False))
    summary = {
        "recommendation": {"construction": rec.construction, "search_space": rec.search_space,
                           "layers": rec.layers, "n_trials": rec.n_trials, "pilot": rec.pilot,
                           "reasons": rec.reasons},
        "statistics": {k: (v.item() if hasattr(v, "item") else v) for k, v in report.summary.items()},
    }
    write_json(folder / "diagnostics.json", summary)
    for name, plot in DIAGNOSTIC_PLOTS:
        plot(report, path=folder / f"{name}.png")
    return summary
