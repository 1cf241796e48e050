"""Cross-model geometry: do two models arrange the same concepts alike?

Per model, the concept-similarity matrix holds the cosines between its concept vectors (at one
relative depth, so models of different depths compare). Two models' matrices are compared on
their upper triangles (each concept pair once) with Spearman's and Pearson's correlations; the
p-value is a Mantel test: the same correlation after permuting one model's concepts.
"""

from __future__ import annotations

import itertools
import math
from typing import NamedTuple

import numpy as np
from scipy import stats

from steerkit.estimators._base import unit_vectors

METHODS = ("spearman", "pearson")


def depth_layer(n_layers: int, depth: float) -> int:
    """The layer index at relative ``depth`` (0 = embedding output, 1 = last block) of an
    activation array with ``n_layers`` (= L + 1) layers: ``round(depth * L)``."""
    if not 0 <= depth <= 1:
        raise ValueError(f"depth must be a fraction of the model's depth between 0 and 1, got {depth!r}")
    return int(round(depth * (n_layers - 1)))


def concept_similarity(vectors, *, depth: float | None = None) -> np.ndarray:
    """Cosine matrix ``(k, k)`` of ``k`` concept vectors ``(k, d)``, or of ``(k, L + 1, d)``
    vectors at relative ``depth`` (required then; see :func:`depth_layer`)."""
    vectors = np.asarray(vectors, dtype=np.float64)
    if vectors.ndim == 3:
        if depth is None:
            raise ValueError("vectors of shape (k, L + 1, d) need depth=, the relative depth (0..1) to compare at")
        vectors = vectors[:, depth_layer(vectors.shape[1], depth)]
    if vectors.ndim != 2 or vectors.shape[0] < 2:
        raise ValueError(f"concept vectors must have shape (k, d) or (k, L + 1, d) with k >= 2, got {vectors.shape}")
    units = unit_vectors(vectors)
    if not np.linalg.norm(units, axis=1).all():
        raise ValueError("a concept vector is zero, so its cosines are undefined: drop that concept")
    return units @ units.T


def _upper(matrix: np.ndarray) -> np.ndarray:
    return matrix[np.triu_indices(matrix.shape[0], k=1)]


def _correlation(a: np.ndarray, b: np.ndarray, method: str) -> float:
    return float((stats.spearmanr if method == "spearman" else stats.pearsonr)(a, b)[0])


class GeometryComparison(NamedTuple):
    """How alike two concept-similarity matrices are (over ``n_pairs`` concept pairs)."""

    spearman: float
    pearson: float
    p_value: float  # Mantel test of the ``method`` correlation, one-sided (greater)
    method: str
    n_permutations: int  # permutations tested (all k! when exact)
    exact: bool
    n_pairs: int


def compare_similarity(a, b, *, method: str = "spearman", n_permutations: int = 9999,
                       seed: int | None = 0) -> GeometryComparison:
    """Spearman and Pearson correlations of two ``(k, k)`` concept-similarity matrices (same
    concepts in the same order) over their upper triangles, and a Mantel p-value for ``method``.

    The p-value is the share of concept permutations (rows and columns of ``b`` permuted
    together) whose correlation is at least the observed one: every permutation when
    ``k! <= n_permutations`` (exact), else ``n_permutations`` random ones drawn with ``seed``,
    counting the observed arrangement (``(1 + hits) / (1 + n_permutations)``).
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape != b.shape or a.shape[0] < 3:
        raise ValueError(f"compare_similarity needs two square matrices of the same k >= 3 concepts, got shapes "
                         f"{a.shape} and {b.shape}")
    k, upper_a = a.shape[0], _upper(a)
    observed = _correlation(upper_a, _upper(b), method)
    exact = math.factorial(k) <= n_permutations
    if exact:
        orders = itertools.permutations(range(k))
    else:
        rng = np.random.default_rng(seed)
        orders = (rng.permutation(k) for _ in range(n_permutations))
    scores = np.array([_correlation(upper_a, _upper(b[np.ix_(order, order)]), method) for order in map(list, orders)])
    hits = int(np.sum(scores >= observed - 1e-12))
    p_value = hits / len(scores) if exact else (1 + hits) / (1 + len(scores))
    return GeometryComparison(
        spearman=_correlation(upper_a, _upper(b), "spearman"), pearson=_correlation(upper_a, _upper(b), "pearson"),
        p_value=float(p_value), method=method, n_permutations=len(scores), exact=exact, n_pairs=len(upper_a),
    )
