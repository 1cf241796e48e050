"""Figures of a layer x coefficient sweep (:class:`~steerkit.model_selection.SteeringSweep`).

Like :mod:`steerkit.diagnostics.plots`: each function builds a Figure without pyplot state,
returns it and, with ``path``, saves it atomically as PNG or SVG.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from steerkit.diagnostics.plots import LAYER_LABEL, _figure, _finish, _label_cells, _ordered

SWEEP_HEATMAPS = {"change_rate": "change rate (share 0-1)", "kl_bits": "KL (bits per response position)",
                  "coherence": "coherence (0-100)", "utility": "utility (0-100)"}
ZONE_COLOURS = {"unstable": "tab:red", "sweet spot": "tab:green", "weak": "tab:orange", "frozen": "tab:blue"}
KL_FLOOR_BITS = 1e-4  # the log colour scale starts here: 0 bits (no steering) shows as the floor


def plot_sweep_heatmap(results: pd.DataFrame, metric: str, *, path=None) -> Figure:
    """Heatmap of ``metric`` (a column of ``SteeringSweep.results_``) over coefficient x layer.

    KL bits use a logarithmic colour scale (clipped below at :data:`KL_FLOOR_BITS`), since
    they span orders of magnitude between frozen and steerable layers.
    """
    if metric not in SWEEP_HEATMAPS or metric not in results:
        raise ValueError(f"metric must be a sweep column among {list(SWEEP_HEATMAPS)}, got {metric!r}")
    grid = results.pivot_table(index="coefficient", columns="layer", values=metric, aggfunc="mean")
    grid = grid.reindex(index=_ordered(results["coefficient"]), columns=_ordered(results["layer"]))
    values = grid.to_numpy(dtype=np.float64)
    fig, ax = _figure()
    if metric == "kl_bits":
        finite = values[np.isfinite(values)]
        top = max(float(finite.max()) if finite.size else 1.0, KL_FLOOR_BITS * 10)
        norm = LogNorm(vmin=KL_FLOOR_BITS, vmax=top)
        shown = np.clip(values, KL_FLOOR_BITS, None)
    else:
        norm, shown = None, values
    image = ax.imshow(np.ma.masked_invalid(shown), origin="lower", aspect="auto", cmap="viridis", norm=norm)
    _label_cells(ax.set_xticks, grid.columns)
    _label_cells(ax.set_yticks, [f"{c:g}" for c in grid.index])
    ax.set_xlabel(LAYER_LABEL)
    ax.set_ylabel("coefficient")
    fig.colorbar(image, ax=ax, label=SWEEP_HEATMAPS[metric])
    ax.set_title(f"Sweep: {SWEEP_HEATMAPS[metric]}")
    return _finish(fig, path)


def plot_steerability(results: pd.DataFrame, zones: pd.DataFrame, *, path=None) -> Figure:
    """Steerability vs depth: change rate per layer (one line per coefficient, with the
    largest over coefficients bold), each layer's zone (``SteeringSweep.zones_``) shaded."""
    layers = _ordered(results["layer"])
    position = {layer: i for i, layer in enumerate(layers)}
    fig, ax = _figure()
    for i, layer in enumerate(layers):
        zone = zones.loc[layer, "zone"]
        ax.axvspan(i - 0.5, i + 0.5, color=ZONE_COLOURS[zone], alpha=0.15, linewidth=0)
    for alpha in _ordered(results["coefficient"]):
        cells = results[results["coefficient"] == alpha].sort_values("layer", key=lambda s: s.map(position))
        ax.plot(cells["layer"].map(position), cells["change_rate"], marker=".", alpha=0.5, label=f"α = {alpha:g}")
    best = results.groupby("layer")["change_rate"].max().reindex(layers)
    ax.plot(range(len(layers)), best.to_numpy(), color="black", linewidth=2, label="max over α")
    for zone, colour in ZONE_COLOURS.items():
        if (zones["zone"] == zone).any():
            ax.axvspan(np.nan, np.nan, color=colour, alpha=0.15, label=zone)
    _label_cells(ax.set_xticks, layers)
    ax.set_xlabel(LAYER_LABEL)
    ax.set_ylabel("change rate (share 0-1)")
    ax.set_ylim(-0.05, 1.05)
    ax.legend(fontsize="x-small", ncols=2, framealpha=0.8)
    ax.set_title("Steerability vs depth (shaded: zones)")
    return _finish(fig, path)


def write_sweep_plots(results: pd.DataFrame, zones: pd.DataFrame, folder) -> list[str]:
    """Save every heatmap whose metric ``results`` has, and the steerability plot, as PNG files
    in ``folder``; returns their file names."""
    folder = Path(folder)
    names = []
    for metric in SWEEP_HEATMAPS:
        if metric in results:
            plot_sweep_heatmap(results, metric, path=folder / f"heatmap_{metric}.png")
            names.append(f"heatmap_{metric}.png")
    plot_steerability(results, zones, path=folder / "steerability.png")
    return names + ["steerability.png"]
