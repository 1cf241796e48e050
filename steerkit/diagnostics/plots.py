"""Figures of the GRACE diagnostics and of steering searches.

Every function builds a :class:`matplotlib.figure.Figure` directly (no pyplot state, works
with any backend, including Agg on a headless machine), returns it, and with ``path`` also
saves it atomically as PNG or SVG (chosen by the suffix).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import LogLocator, MaxNLocator, NullFormatter, StrMethodFormatter

from steerkit._io import atomic_path
from steerkit.diagnostics.geometry import TOP_K_LAYERS, GeometryReport, _nanmean, norm_cv

FIGSIZE = (7.0, 4.0)
DPI = 120
LAYER_LABEL = "layer (output of block l)"
SAVE_FORMATS = ("png", "svg")
_MAX_ANNOTATED_CELLS = 80


# -- shared helpers ---------------------------------------------------------------------------
def _figure(figsize=FIGSIZE) -> tuple[Figure, Axes]:
    fig = Figure(figsize=figsize, dpi=DPI, layout="constrained")
    return fig, fig.add_subplot()


def _finish(fig: Figure, path: str | os.PathLike | None) -> Figure:
    """Save ``fig`` atomically when ``path`` is given (format from the suffix); return it."""
    if path is not None:
        path = Path(path)
        fmt = path.suffix.lower().lstrip(".")
        if fmt not in SAVE_FORMATS:
            raise ValueError(f"save figures as one of {SAVE_FORMATS}, got {path.name!r}")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=DPI)
    return fig


def _layer_axis(ax) -> None:
    ax.set_xlabel(LAYER_LABEL)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)


def _shade_skipped(ax, report: GeometryReport) -> None:
    """Grey band over layers left out of the summaries (the embedding output)."""
    for layer in report.layers.loc[~report.layers["in_summary"], "layer"]:
        ax.axvspan(layer - 0.5, layer + 0.5, color="0.9", zorder=0)


# -- geometry ---------------------------------------------------------------------------------
def plot_alignment(report: GeometryReport, *, top_k: int = TOP_K_LAYERS, path=None) -> Figure:
    """𝒜^PL and 𝒜^RA by layer, with the ``top_k`` PL layers (the guided search space) marked."""
    table = report.layers
    fig, ax = _figure()
    _shade_skipped(ax, report)
    ax.plot(table["layer"], table["alignment_pl"], marker=".", label=r"$\mathcal{A}^{PL}$ (prompt last)")
    ax.plot(table["layer"], table["alignment_ra"], marker=".", label=r"$\mathcal{A}^{RA}$ (response avg)")
    top = report.top_alignment_layers(top_k, "pl")
    values = table.set_index("layer").loc[top, "alignment_pl"]
    ax.scatter(top, values, s=70, facecolors="none", edgecolors="black", zorder=3,
               label=rf"top-{len(top)} $\mathcal{{A}}^{{PL}}$ layers")
    _layer_axis(ax)
    ax.set_ylabel("mean pairwise cosine")
    r = report.summary["pl_ra_correlation"]
    ax.set_title(f"Alignment of difference vectors (PL/RA r = {r:.2f})")
    ax.legend(loc="best", fontsize="small")
    return _finish(fig, path)


def plot_granularity(report: GeometryReport, *, path=None) -> Figure:
    """Granularity G = γ / 𝒜^PL by layer, with the reference G = 1 (one stable direction)."""
    table = report.layers
    fig, ax = _figure()
    _shade_skipped(ax, report)
    ax.plot(table["layer"], table["granularity_pl"], marker=".", color="C2", label=r"$G = \gamma / \mathcal{A}^{PL}$")
    ax.axhline(1.0, color="0.3", linestyle="--", linewidth=1, label="G = 1")
    finite = table["granularity_pl"].to_numpy(dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size and (finite > 0).all() and finite.max() > 10 * finite.min():  # ratios over > 1 decade
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(StrMethodFormatter("{x:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
    _layer_axis(ax)
    ax.set_ylabel(r"granularity $G$ (ratio)")
    ax.set_title(f"Granularity by layer (concept mean G = {report.summary['granularity']:.2f})")
    ax.legend(loc="best", fontsize="small")
    return _finish(fig, path)


def plot_pair_heatmap(report: GeometryReport, layer: int | None = None, *, path=None) -> Figure:
    """Cosines between per-instruction-pair mean RA directions at ``layer``.

    ``layer`` defaults to the layer with the highest 𝒜^PL (layer 1 if it is undefined).
    """
    if layer is None:
        best = report.summary["alignment_pl_best_layer"]
        layer = 1 if best is None else best
    n_layers = report.pair_cosines.shape[0]
    if not 0 <= layer < n_layers:
        raise ValueError(f"layer must be in 0..{n_layers - 1}, got {layer}")
    cosines = report.pair_cosines[layer]
    labels = [f"pair {p}" for p in report.pair_ids]
    fig, ax = _figure(figsize=(5.6, 4.6))
    image = ax.imshow(cosines, cmap="RdBu_r", vmin=-1, vmax=1)
    for (i, j), value in np.ndenumerate(cosines):
        if np.isfinite(value):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize="small",
                    color="white" if abs(value) > 0.6 else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    fig.colorbar(image, ax=ax, label="cosine")
    low, high = report.block_thresholds
    verdict = "yes" if report.layers["block_structure"].iloc[layer] else "no"
    ax.set_title(f"Instruction-pair directions (RA), layer {layer}\n"
                 f"block structure (one pair < {low} to ≥ 2 others, rest > {high}): {verdict}", fontsize="medium")
    return _finish(fig, path)


def plot_magnitudes(source, *, path=None) -> Figure:
    """Distribution of ``‖d‖`` per layer: median with interquartile and 5–95 % bands.

    ``source`` is a :class:`GeometryReport` (its RA norms) or an array of norms of shape
    ``(n_contrasts, n_layers)`` (e.g. :func:`~steerkit.diagnostics.geometry.difference_norms`).
    """
    if isinstance(source, GeometryReport):
        norms, cv = source.magnitudes, source.summary["magnitude_cv"]
    else:
        norms = np.asarray(source, dtype=np.float64)
        if norms.ndim != 2:
            raise ValueError(f"norms must have shape (n_contrasts, n_layers), got {norms.shape}")
        cv = _nanmean(norm_cv(norms))
    layers = np.arange(norms.shape[1])
    q05, q25, q50, q75, q95 = np.nanpercentile(norms, [5, 25, 50, 75, 95], axis=0)
    fig, ax = _figure()
    ax.fill_between(layers, q05, q95, color="C0", alpha=0.15, linewidth=0, label="5–95 %")
    ax.fill_between(layers, q25, q75, color="C0", alpha=0.35, linewidth=0, label="interquartile")
    ax.plot(layers, q50, color="C0", marker=".", label="median")
    _layer_axis(ax)
    ax.set_ylabel(r"$\|d\|$ (activation units)")
    ax.set_title(f"Difference-vector norms by layer (mean CV = {cv:.2f})")
    ax.legend(loc="upper left", fontsize="small")
    return _finish(fig, path)


# -- searches ---------------------------------------------------------------------------------
def _ordered(values) -> list:
    """Distinct values, numerically sorted when they are all numbers, else as text."""
    unique = pd.unique(pd.Series(values).dropna())
    numeric = pd.to_numeric(pd.Series(unique), errors="coerce")
    if numeric.notna().all():
        return [unique[i] for i in np.argsort(numeric.to_numpy(), kind="stable")]
    return sorted(unique, key=str)


def _label_cells(set_ticks, labels, max_ticks: int = 20) -> None:
    """Label heatmap cells with ``labels``, every k-th one when there are many."""
    step = max(1, int(np.ceil(len(labels) / max_ticks)))
    positions = np.arange(0, len(labels), step)
    set_ticks(positions, [str(labels[i]) for i in positions])


def _param_column(frame: pd.DataFrame, given: str | None, suffix: str) -> str:
    if given is not None:
        if given not in frame:
            raise KeyError(f"column {given!r} not in the search results; columns: {list(frame)}")
        return given
    candidates = [c for c in frame if c.startswith("param_") and c.endswith(suffix)]
    if not candidates:
        raise KeyError(f"no param_*{suffix} column in the search results; pass the column name")
    return candidates[0]


def plot_search_landscape(cv_results, *, x: str | None = None, y: str | None = None,
                          score: str = "mean_test_score", path=None) -> Figure:
    """Heatmap of a search's score over layer × coefficient.

    Parameters
    ----------
    cv_results : ``search.cv_results_`` (dict) or its DataFrame.
    x, y : columns for the axes; default the ``param_*layer`` and ``param_*coefficient``
        columns (``param_layer``, ``param_steerer__coefficient`` or ``param_coefficient``).
    score : column to show; repeated configurations are averaged, untried cells are blank.
    """
    frame = pd.DataFrame(cv_results)
    x, y = _param_column(frame, x, "layer"), _param_column(frame, y, "coefficient")
    frame = frame.assign(**{score: pd.to_numeric(frame[score], errors="coerce")})
    grid = frame.groupby([y, x])[score].mean().unstack(x)
    grid = grid.reindex(index=_ordered(frame[y]), columns=_ordered(frame[x]))
    values = grid.to_numpy(dtype=np.float64)
    fig, ax = _figure()
    image = ax.imshow(np.ma.masked_invalid(values), origin="lower", aspect="auto", cmap="viridis")
    _label_cells(ax.set_xticks, grid.columns)
    _label_cells(ax.set_yticks, grid.index)
    if np.isfinite(values).sum() <= _MAX_ANNOTATED_CELLS:
        finite = values[np.isfinite(values)]
        middle = (finite.min() + finite.max()) / 2 if finite.size else 0.0
        for (i, j), value in np.ndenumerate(values):
            if np.isfinite(value):
                ax.text(j, i, f"{value:.0f}", ha="center", va="center", fontsize="small",
                        color="black" if value > middle else "white")
    if np.isfinite(values).any():
        row, column = np.unravel_index(np.nanargmax(values), values.shape)
        ax.add_patch(Rectangle((column - 0.5, row - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2,
                               label="best"))
        ax.legend(loc="upper right", fontsize="small", framealpha=0.8)
    ax.set_xlabel(x.removeprefix("param_"))
    ax.set_ylabel(y.removeprefix("param_"))
    fig.colorbar(image, ax=ax, label=score)
    ax.set_title(f"Search landscape ({score}; blank = not evaluated)")
    return _finish(fig, path)


def _best_so_far_matrix(sequences) -> np.ndarray:
    """Running best of each seed's scores, shape (n_seeds, max_trials); NaN past a seed's end
    and before its first scored trial."""
    if len(sequences) and np.ndim(sequences[0]) == 0:
        sequences = [sequences]  # one seed given as a flat sequence
    rows = [np.asarray(s, dtype=np.float64) for s in sequences]
    width = max((r.size for r in rows), default=0)
    matrix = np.full((len(rows), width), np.nan)
    for i, row in enumerate(rows):
        matrix[i, : row.size] = np.fmax.accumulate(row) if row.size else row
    return matrix


def _band(curves: np.ndarray, band: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, lower and upper edge over seeds (axis 0) of best-so-far curves; NaN-aware."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(curves, axis=0)
        if band == "minmax":
            return mean, np.nanmin(curves, axis=0), np.nanmax(curves, axis=0)
        spread = np.nanstd(curves, axis=0)
        return mean, mean - spread, mean + spread


def plot_best_so_far(histories: dict, *, band: str = "minmax", path=None) -> Figure:
    """Mean best-so-far score per trial for each search strategy, over seeds.

    Parameters
    ----------
    histories : ``{strategy: [scores of seed 0, scores of seed 1, ...]}``, each a sequence of
        trial scores in trial order (e.g. ``search.history_["score"]``).
    band : ``"minmax"`` (shade min to max over seeds) or ``"sd"`` (mean ± one standard
        deviation).
    """
    if band not in ("minmax", "sd"):
        raise ValueError(f"band must be 'minmax' or 'sd', got {band!r}")
    fig, ax = _figure()
    for color, (strategy, sequences) in enumerate(histories.items()):
        curves = _best_so_far_matrix(list(sequences))
        trials = np.arange(1, curves.shape[1] + 1)
        mean, lower, upper = _band(curves, band)
        ax.fill_between(trials, lower, upper, color=f"C{color}", alpha=0.2, linewidth=0)
        ax.plot(trials, mean, color=f"C{color}", label=f"{strategy} ({curves.shape[0]} seeds)")
    ax.set_xlabel("trial")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("best-so-far score")
    ax.grid(alpha=0.3)
    ax.set_title(f"Search efficiency: mean best-so-far ({'min–max' if band == 'minmax' else '±1 sd'} band)")
    ax.legend(loc="lower right", fontsize="small")
    return _finish(fig, path)
