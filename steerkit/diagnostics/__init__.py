"""GRACE geometry diagnostics: alignment, granularity, magnitudes, pair blocks, ANOVA, plots.

All statistics are pure functions of difference vectors ``(n_contrasts, n_layers, d)`` and
run without a model; :func:`geometry_report` computes them all from an ``ActivationSet``.
"""

from steerkit.diagnostics.anova import anova_eta_squared
from steerkit.diagnostics.cross_model import GeometryComparison, compare_similarity, concept_similarity
from steerkit.diagnostics.geometry import (
    BLOCK_HIGH,
    BLOCK_LOW,
    BLOCK_SHARE_DETECTED,
    GeometryReport,
    alignment,
    block_structure,
    block_structure_share,
    concept_granularity,
    difference_norms,
    geometry_report,
    granularity,
    magnitude_cv,
    pair_cosines,
    profile_correlation,
    within_question_agreement,
)
from steerkit.diagnostics.recommender import GraceRecommender, Recommendation
from steerkit.diagnostics.plots import (
    plot_alignment,
    plot_best_so_far,
    plot_granularity,
    plot_magnitudes,
    plot_pair_heatmap,
    plot_search_landscape,
)

__all__ = [
    "BLOCK_HIGH",
    "BLOCK_LOW",
    "BLOCK_SHARE_DETECTED",
    "GeometryComparison",
    "GeometryReport",
    "GraceRecommender",
    "Recommendation",
    "alignment",
    "anova_eta_squared",
    "block_structure",
    "block_structure_share",
    "compare_similarity",
    "concept_granularity",
    "concept_similarity",
    "difference_norms",
    "geometry_report",
    "granularity",
    "magnitude_cv",
    "pair_cosines",
    "plot_alignment",
    "plot_best_so_far",
    "plot_granularity",
    "plot_magnitudes",
    "plot_pair_heatmap",
    "plot_search_landscape",
    "profile_correlation",
    "within_question_agreement",
]
