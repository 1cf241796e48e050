"""GRACE geometry statistics of contrastive difference vectors.

Every statistic is a pure function of difference vectors ``D`` of shape
``(n_contrasts, n_layers, d)`` (a 2-D ``(n_contrasts, d)`` array is one layer) plus per-contrast
id arrays, and returns one value per layer. Costs are linear in the number of contrasts: mean
pairwise cosines use the identity

    mean_{i<j} cos(u_i, u_j) = (‖Σ_i u_i‖² − n) / (n (n − 1))     for unit vectors u_i,

and per-group quantities use sparse group sums, so no ``n × n`` matrix is ever formed.
float32 input stays float32 (unit vectors, in-run sums; no float64 copy of the differences);
sums over many rows, per-layer statistics and results are float64. Other dtypes are float64.

Conventions
-----------
* Layer ``l`` on the layer axis is the residual stream after decoder block ``l``; layer 0 is
  the embedding output (see ``steerkit.activations.LAYER_CONVENTION``).
* A zero-norm difference vector has no direction. Statistics of unit vectors (alignment,
  within-question agreement, the ANOVA) leave it out, per layer. This happens in practice:
  at layer 0 the prompt-last difference is exactly zero when both prompts end with the same
  token (chat templates do) and the model has no absolute position embeddings, and the
  response-average difference is zero there whenever both responses are the same text.
  Magnitude statistics keep zero vectors (a zero norm is a valid magnitude).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import sparse

from steerkit.estimators.cluster import cosine_matrices

if TYPE_CHECKING:
    from steerkit.activations import ActivationSet

MIN_ALIGNMENT = 1e-12
"""Alignment at or below this is treated as undefined when dividing by it (granularity)."""

BLOCK_LOW, BLOCK_HIGH = 0.3, 0.7
"""Cosine thresholds of GRACE's per-pair block structure."""

BLOCK_SHARE_DETECTED = 0.4
"""Block structure is *detected* when it holds on at least this share of layers."""

ETA_COLUMNS = ("eta2_prompt", "eta2_question", "eta2_interaction")

TOP_K_LAYERS = 15
"""GRACE's geometry-guided search space: the 15 layers with the highest prompt-last alignment."""


# -- array helpers ----------------------------------------------------------------------------
SUM_RUN = 32
"""float32 rows are added in float32 in runs of at most this many rows of one group; the run
totals are added in float64, so a sum over many rows keeps float64-like accuracy."""


def as_layered(D) -> np.ndarray:
    """``D`` as a floating array of shape ``(n, n_layers, d)``; ``(n, d)`` becomes ``(n, 1, d)``.

    float32 and float64 arrays are kept as they are (no copy); other dtypes become float64.
    """
    D = np.asarray(D)
    if D.dtype not in (np.float32, np.float64):
        D = D.astype(np.float64)
    if D.ndim == 2:
        return D[:, None, :]
    if D.ndim != 3:
        raise ValueError(f"difference vectors must have shape (n, d) or (n, n_layers, d), got {D.shape}")
    return D


def _norms(layered: np.ndarray) -> np.ndarray:
    """Euclidean norms along the last axis as float64, in one pass without a full-size temporary."""
    return np.sqrt(np.einsum("...d,...d->...", layered, layered)).astype(np.float64, copy=False)


def _check_ids(ids, n: int, name: str) -> np.ndarray:
    ids = np.asarray(ids)
    if ids.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) to match the difference vectors, got {ids.shape}")
    return ids


def unit_differences(D, *, overwrite: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit-normalised difference vectors, which of them have a direction, and their norms.

    Parameters
    ----------
    D : array of shape (n, n_layers, d) or (n, d)
    overwrite : normalise ``D`` in place (it must then be a float32 or float64 array) instead
        of writing a new array.

    Returns
    -------
    units : array of shape (n, n_layers, d), float32 for float32 input, else float64
        ``d / ‖d‖``; all-zero where ``‖d‖ = 0``.
    valid : bool array of shape (n, n_layers)
        ``‖d‖ > 0``.
    norms : float64 array of shape (n, n_layers)
        ``‖d‖`` in activation units.
    """
    layered = as_layered(D)
    norms = _norms(layered)
    valid = norms > 0
    units = layered if overwrite else np.empty_like(layered)
    np.divide(layered, np.where(valid, norms, 1.0).astype(layered.dtype)[..., None], out=units)
    units[~valid] = 0.0  # underflowing float32 norms
    return units, valid, norms


def difference_norms(D) -> np.ndarray:
    """Euclidean norms ``‖d‖`` in activation units, float64 of shape ``(n, n_layers)``."""
    return _norms(as_layered(D))


def _run_keys(groups: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Split each group's rows, in order, into runs of at most ``SUM_RUN`` rows.

    Returns the run of each row (n,) and the group of each run (n_runs,), runs numbered
    group by group.
    """
    counts = np.bincount(groups, minlength=n_groups)
    order = np.argsort(groups, kind="stable")
    rank = np.empty(groups.size, dtype=np.intp)
    rank[order] = np.arange(groups.size) - np.repeat(np.cumsum(counts) - counts, counts)
    runs_per_group = -(-counts // SUM_RUN)
    first_run = np.cumsum(runs_per_group) - runs_per_group
    return first_run[groups] + rank // SUM_RUN, np.repeat(np.arange(n_groups), runs_per_group)


def _indicator(rows: np.ndarray, n_rows: int, dtype) -> sparse.csr_array:
    """Sparse ``(n_rows, rows.size)`` matrix with a one at ``(rows[i], i)``."""
    return sparse.csr_array((np.ones(rows.size, dtype=dtype), (rows, np.arange(rows.size))), shape=(n_rows, rows.size))


def group_sums(values: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Sum of ``values`` (n, ...) over the rows of each group, float64 of shape ``(n_groups, ...)``.

    ``groups`` (n,) holds integer codes in ``range(n_groups)``. Linear in ``n``. float32 values
    are read once without a float64 copy: rows are added in runs of at most ``SUM_RUN`` rows
    in float32, the run totals in float64.
    """
    n = values.shape[0]
    flat = values.reshape(n, -1)
    if flat.dtype != np.float32:
        sums = _indicator(groups, n_groups, np.float64) @ flat.astype(np.float64, copy=False)
    else:
        run_of_row, group_of_run = _run_keys(groups, n_groups)
        run_sums = _indicator(run_of_row, group_of_run.size, np.float32) @ flat
        if group_of_run.size == n_groups:  # one run per group: the run totals are the sums
            sums = run_sums.astype(np.float64)
        else:
            sums = _indicator(group_of_run, n_groups, np.float64) @ run_sums.astype(np.float64)
    return np.asarray(sums).reshape((n_groups,) + values.shape[1:])


def _mean_pairwise_cosine(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Mean pairwise cosine from sums of unit vectors (..., d) and their counts (...).

    NaN where fewer than two vectors contribute.
    """
    squared = np.einsum("...d,...d->...", sums, sums)
    pairs = counts * (counts - 1.0)
    return np.divide(squared - counts, pairs, out=np.full(counts.shape, np.nan), where=counts >= 2)


def _nanmean(values: np.ndarray, axis=None):
    """``np.nanmean`` without the all-NaN warning (all-NaN gives NaN)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values, axis=axis)


def _select_layers(profile: np.ndarray, layers) -> np.ndarray:
    return profile if layers is None else profile[np.asarray(layers, dtype=np.intp)]


# -- alignment, agreement, granularity --------------------------------------------------------
def alignment(D) -> np.ndarray:
    """GRACE alignment 𝒜(ℓ): mean pairwise cosine of the unit difference vectors.

    Parameters
    ----------
    D : array of shape (n_contrasts, n_layers, d) or (n_contrasts, d)

    Returns
    -------
    float64 array of shape (n_layers,)
        Mean of ``cos(d_i, d_j)`` over all pairs ``i < j`` of non-zero differences, in
        [-1, 1]; NaN on layers with fewer than two non-zero differences.
    """
    return alignment_of_units(*unit_differences(D)[:2])


def alignment_of_units(units: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """:func:`alignment` (n_layers,) from :func:`unit_differences`' ``units`` and ``valid``."""
    total = group_sums(units, np.zeros(units.shape[0], dtype=np.intp), 1)[0]
    return _mean_pairwise_cosine(total, valid.sum(axis=0).astype(np.float64))


def question_sums(units: np.ndarray, valid: np.ndarray, question_ids) -> tuple[np.ndarray, np.ndarray]:
    """Per-question sums of unit differences and counts of non-zero ones.

    Parameters
    ----------
    units, valid : from :func:`unit_differences`, shapes (n, n_layers, d) and (n, n_layers).
    question_ids : array of shape (n,)

    Returns
    -------
    sums : float64 array of shape (Q, n_layers, d), questions in ``np.unique`` order
    counts : float64 array of shape (Q, n_layers)
    """
    labels, groups = np.unique(_check_ids(question_ids, units.shape[0], "question_ids"), return_inverse=True)
    return group_sums(units, groups, labels.size), group_sums(valid, groups, labels.size)


def agreement_from_sums(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """γ per layer (n_layers,) from :func:`question_sums`: the unweighted mean over questions
    of their mean pairwise cosine, over questions with at least two non-zero differences."""
    return _nanmean(_mean_pairwise_cosine(sums, counts), axis=0)


def within_question_agreement(D, question_ids) -> np.ndarray:
    """GRACE within-question agreement γ(ℓ).

    For each question, the mean pairwise cosine among its non-zero differences (one per
    instruction pair); then the unweighted mean over questions that have at least two.

    Parameters
    ----------
    D : array of shape (n_contrasts, n_layers, d) or (n_contrasts, d)
    question_ids : array of shape (n_contrasts,)

    Returns
    -------
    float64 array of shape (n_layers,)
        NaN on layers where no question has two non-zero differences.
    """
    units, valid, _ = unit_differences(D)
    return agreement_from_sums(*question_sums(units, valid, question_ids))


def granularity_ratio(gamma, align, *, min_alignment: float = MIN_ALIGNMENT) -> np.ndarray:
    """``γ / 𝒜`` per layer, NaN where ``𝒜 ≤ min_alignment`` or either input is NaN.

    The paper skips layers with 𝒜 = 0. A non-positive 𝒜 is skipped too: the ratio is meant
    to say how much more the differences agree within a question than across all contrasts,
    and dividing by zero or a negative across-contrast agreement gives a number (infinite or
    of flipped sign) that does not answer that question.
    """
    gamma, align = np.asarray(gamma, dtype=np.float64), np.asarray(align, dtype=np.float64)
    defined = np.isfinite(gamma) & (align > min_alignment)  # NaN compares False
    return np.divide(gamma, align, out=np.full(align.shape, np.nan), where=defined)


def granularity(D, question_ids, *, min_alignment: float = MIN_ALIGNMENT) -> np.ndarray:
    """GRACE granularity ``G(ℓ) = γ(ℓ) / 𝒜(ℓ)``, shape ``(n_layers,)`` (dimensionless).

    ≈ 1: one stable direction across contexts; ≫ 1: instruction pairs agree within each
    question but the direction rotates across questions. GRACE computes it on prompt-last
    differences. NaN where 𝒜 ≤ ``min_alignment`` (see :func:`granularity_ratio`).
    """
    return granularity_ratio(within_question_agreement(D, question_ids), alignment(D), min_alignment=min_alignment)


def concept_granularity(D, question_ids, *, layers=None, min_alignment: float = MIN_ALIGNMENT) -> float:
    """Per-concept granularity: mean of :func:`granularity` over ``layers`` (default all),
    ignoring layers where it is undefined; NaN if it is undefined everywhere."""
    profile = granularity(D, question_ids, min_alignment=min_alignment)
    return float(_nanmean(_select_layers(profile, layers)))


# -- magnitudes and profiles ------------------------------------------------------------------
def norm_cv(norms) -> np.ndarray:
    """Coefficient of variation per layer of norms ``(n, n_layers)``, shape ``(n_layers,)``.

    Population standard deviation (ddof = 0) divided by the mean; NaN where the mean is zero.
    """
    norms = np.asarray(norms, dtype=np.float64)
    mean = norms.mean(axis=0)
    return np.divide(norms.std(axis=0), mean, out=np.full(mean.shape, np.nan), where=mean > 0)


def magnitude_cv(D) -> np.ndarray:
    """Coefficient of variation of ``‖d‖`` per layer, shape ``(n_layers,)`` (dimensionless).

    Population standard deviation (ddof = 0) over contrasts divided by the mean norm; zero
    vectors count. NaN where the mean norm is zero.
    """
    return norm_cv(difference_norms(D))


def profile_correlation(a, b, *, layers=None) -> float:
    """Pearson r across layers between two per-layer profiles (e.g. 𝒜^PL and 𝒜^RA).

    Parameters
    ----------
    a, b : arrays of shape (n_layers,)
    layers : optional layer indices to use (e.g. ``range(1, n_layers)`` to leave out the
        embedding output, whose prompt-last alignment is degenerate).

    Returns
    -------
    float
        r over the layers where both profiles are finite; NaN with fewer than three such
        layers or when either profile is constant there.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"profiles must be 1-D and of equal length, got {a.shape} and {b.shape}")
    a, b = _select_layers(a, layers), _select_layers(b, layers)
    keep = np.isfinite(a) & np.isfinite(b)
    if keep.sum() < 3:
        return float("nan")
    a, b = a[keep] - a[keep].mean(), b[keep] - b[keep].mean()
    denominator = np.sqrt((a @ a) * (b @ b))
    if denominator == 0:
        return float("nan")
    return float(np.clip((a @ b) / denominator, -1.0, 1.0))


# -- per-instruction-pair structure -----------------------------------------------------------
def pair_cosines(D, instruction_ids) -> np.ndarray:
    """Cosine matrix between the mean directions of the instruction pairs, per layer.

    Each pair's direction is the mean of its differences (over questions), normalised.

    Parameters
    ----------
    D : array of shape (n_contrasts, n_layers, d) or (n_contrasts, d); GRACE uses RA.
    instruction_ids : array of shape (n_contrasts,)

    Returns
    -------
    float64 array of shape (n_layers, P, P)
        Pairs in sorted order of ``np.unique(instruction_ids)``. Rows and columns of a pair
        whose mean difference is zero are NaN.
    """
    layered = as_layered(D)
    labels, groups = np.unique(_check_ids(instruction_ids, layered.shape[0], "instruction_ids"), return_inverse=True)
    return cosine_matrices(group_sums(layered, groups, labels.size), undefined=np.nan)  # sums: the means' directions


def block_structure(cosines, low: float = BLOCK_LOW, high: float = BLOCK_HIGH) -> np.ndarray:
    """Whether each layer's pair-cosine matrix shows GRACE's block structure.

    A layer has block structure when some pair ``k`` has cosine < ``low`` with at least two
    other pairs while the mean mutual cosine of the remaining pairs (all pairs but ``k``,
    each unordered pair once) is > ``high``; any such ``k`` qualifies. Needs at least three
    pairs; undefined (NaN) cosines never qualify.

    Parameters
    ----------
    cosines : array of shape (n_layers, P, P) or (P, P), e.g. from :func:`pair_cosines`

    Returns
    -------
    bool array of shape (n_layers,) (0-d for a single matrix)
    """
    cosines = np.asarray(cosines, dtype=np.float64)
    n_pairs = cosines.shape[-1]
    if n_pairs < 3:
        return np.zeros(cosines.shape[:-2], dtype=bool)
    off_diagonal = ~np.eye(n_pairs, dtype=bool)
    outlier = ((cosines < low) & off_diagonal).sum(axis=-1) >= 2
    off = np.where(off_diagonal, cosines, 0.0)
    touching = off.sum(axis=-1) + off.sum(axis=-2)  # every entry in row k or column k
    rest_mean = (off.sum(axis=(-2, -1))[..., None] - touching) / ((n_pairs - 1) * (n_pairs - 2))
    return (outlier & (rest_mean > high)).any(axis=-1)


def block_structure_share(cosines, low: float = BLOCK_LOW, high: float = BLOCK_HIGH, *, layers=None) -> float:
    """Share of ``layers`` (default all) with :func:`block_structure`, in [0, 1].

    GRACE counts block structure as detected when the share is ≥ ``BLOCK_SHARE_DETECTED``.
    """
    flags = _select_layers(np.atleast_1d(block_structure(cosines, low, high)), layers)
    return float(flags.mean()) if flags.size else float("nan")


# -- report -----------------------------------------------------------------------------------
@dataclass
class GeometryReport:
    """GRACE geometry of one :class:`~steerkit.activations.ActivationSet`.

    Attributes
    ----------
    layers : DataFrame, one row per layer ``0..L`` with ``layer``, ``in_summary`` (False for
        the embedding output when it is skipped), ``alignment_pl``, ``alignment_ra``,
        ``gamma_pl``, ``granularity_pl``, ``magnitude_cv_ra``, ``block_structure`` and the
        ANOVA's ``eta2_prompt``, ``eta2_question``, ``eta2_interaction``.
    summary : dict of scalars over the summary layers: ``alignment_pl_max``,
        ``alignment_pl_best_layer``, ``alignment_ra_max``, ``granularity`` (mean G),
        ``magnitude_cv`` (mean), ``pl_ra_correlation``, ``block_structure_share``,
        ``block_structure_detected``, ``eta2_prompt``, ``eta2_question``,
        ``eta2_interaction`` (means), ``n_contrasts``, ``n_questions``, ``n_pairs``,
        ``n_layers``.
    pair_cosines : array (L + 1, P, P), cosines between per-pair mean RA directions.
    pair_ids : array (P,), the instruction ids in the order of ``pair_cosines``.
    anova : DataFrame from :func:`~steerkit.diagnostics.anova.anova_eta_squared` (RA).
    magnitudes : array (n_contrasts, L + 1), ``‖d‖`` of the RA differences.
    positions : ``(pl, ra)`` position names the statistics were computed on.
    block_thresholds : ``(low, high)`` used for block structure.
    """

    layers: pd.DataFrame
    summary: dict
    pair_cosines: np.ndarray
    pair_ids: np.ndarray
    anova: pd.DataFrame
    magnitudes: np.ndarray
    positions: tuple[str, str] = ("prompt_last", "response_avg")
    block_thresholds: tuple[float, float] = (BLOCK_LOW, BLOCK_HIGH)

    def top_alignment_layers(self, k: int = TOP_K_LAYERS, position: str = "pl") -> np.ndarray:
        """The ``k`` summary layers with the highest alignment (``position`` "pl" or "ra"),
        best first; layers with undefined alignment are never chosen."""
        column = {"pl": "alignment_pl", "ra": "alignment_ra"}[position]
        table = self.layers[self.layers["in_summary"] & self.layers[column].notna()]
        return table.sort_values([column, "layer"], ascending=[False, True])["layer"].to_numpy()[:k]

    def to_frame(self) -> pd.DataFrame:
        """The per-layer table in long format: ``layer``, ``in_summary``, ``statistic``, ``value``."""
        table = self.layers.astype({"block_structure": float})
        return table.melt(id_vars=["layer", "in_summary"], var_name="statistic", value_name="value")


def _summary_layers(n_layers: int, skip_embedding: bool) -> np.ndarray:
    return np.arange(1 if skip_embedding else 0, n_layers)


def geometry_report(
    activation_set: "ActivationSet",
    *,
    pl: str = "prompt_last",
    ra: str = "response_avg",
    skip_embedding: bool = True,
    low: float = BLOCK_LOW,
    high: float = BLOCK_HIGH,
    min_alignment: float = MIN_ALIGNMENT,
) -> GeometryReport:
    """All GRACE geometry diagnostics of an ActivationSet.

    Following GRACE, alignment 𝒜^PL, within-question agreement γ and granularity
    G = γ / 𝒜 use the ``pl`` differences; 𝒜^RA, magnitude CV, the per-pair cosines / block
    structure and the ANOVA use the ``ra`` differences. Per-layer arrays cover every layer
    ``0..L``; summaries use layers ``1..L`` when ``skip_embedding`` (the embedding output
    has no context, so its prompt-last difference is zero or a pure position artefact).

    Parameters
    ----------
    activation_set : ActivationSet with both positions.
    pl, ra : position names for the prompt-boundary and response statistics.
    skip_embedding : leave layer 0 out of the summaries (it stays in the table).
    low, high : block-structure cosine thresholds.
    min_alignment : granularity is undefined where 𝒜^PL ≤ this.
    """
    from steerkit.diagnostics.anova import anova_table

    contrasts = activation_set.contrasts()
    question_ids = contrasts["question_id"].to_numpy()
    instruction_ids = contrasts["instruction_id"].to_numpy()
    d_pl = activation_set.differences(pl)  # a new array, ours to normalise in place
    n_layers = d_pl.shape[1]
    used = _summary_layers(n_layers, skip_embedding)

    units_pl, valid_pl, _ = unit_differences(d_pl, overwrite=True)
    sums_pl, counts_pl = question_sums(units_pl, valid_pl, question_ids)
    align_pl = alignment_of_units(units_pl, valid_pl)
    del d_pl, units_pl
    gamma_pl = agreement_from_sums(sums_pl, counts_pl)
    granularity_pl = granularity_ratio(gamma_pl, align_pl, min_alignment=min_alignment)
    del sums_pl

    d_ra = activation_set.differences(ra)
    cosines = pair_cosines(d_ra, instruction_ids)  # of the raw differences, before normalising them
    blocks = block_structure(cosines, low, high)
    units_ra, valid_ra, norms_ra = unit_differences(d_ra, overwrite=True)
    sums_ra = question_sums(units_ra, valid_ra, question_ids)[0]
    align_ra = alignment_of_units(units_ra, valid_ra)
    cv_ra = norm_cv(norms_ra)
    anova = anova_table(units_ra, valid_ra, question_ids, instruction_ids, sums_ra)

    table = pd.DataFrame({
        "layer": np.arange(n_layers),
        "in_summary": np.isin(np.arange(n_layers), used),
        "alignment_pl": align_pl,
        "alignment_ra": align_ra,
        "gamma_pl": gamma_pl,
        "granularity_pl": granularity_pl,
        "magnitude_cv_ra": cv_ra,
        "block_structure": blocks,
        **{name: anova[name].to_numpy() for name in ETA_COLUMNS},
    })
    share = block_structure_share(cosines, low, high, layers=used)
    best_pl, best_ra = _nanargmax(align_pl, used), _nanargmax(align_ra, used)
    summary = {
        "alignment_pl_max": _value_at(align_pl, best_pl),
        "alignment_pl_best_layer": best_pl,
        "alignment_ra_max": _value_at(align_ra, best_ra),
        "granularity": float(_nanmean(granularity_pl[used])),
        "magnitude_cv": float(_nanmean(cv_ra[used])),
        "pl_ra_correlation": profile_correlation(align_pl, align_ra, layers=used),
        "block_structure_share": share,
        "block_structure_detected": bool(share >= BLOCK_SHARE_DETECTED),
        **{name: float(_nanmean(table[name].to_numpy()[used])) for name in ETA_COLUMNS},
        "n_contrasts": int(len(contrasts)),
        "n_questions": int(np.unique(question_ids).size),
        "n_pairs": int(np.unique(instruction_ids).size),
        "n_layers": int(n_layers),
    }
    return GeometryReport(
        layers=table, summary=summary, pair_cosines=cosines, pair_ids=np.unique(instruction_ids), anova=anova,
        magnitudes=norms_ra, positions=(pl, ra), block_thresholds=(low, high),
    )


def _nanargmax(profile: np.ndarray, layers: np.ndarray) -> int | None:
    """Layer index (from ``layers``) of the largest finite value of ``profile``, or None."""
    values = profile[layers]
    if not np.isfinite(values).any():
        return None
    return int(layers[np.nanargmax(values)])


def _value_at(profile: np.ndarray, layer: int | None) -> float:
    return float("nan") if layer is None else float(profile[layer])
