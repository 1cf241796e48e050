"""``GraceRecommender``: GRACE's rules from geometry to construction, search space and budget."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.base import BaseEstimator, MetaEstimatorMixin, clone

from steerkit.diagnostics.geometry import BLOCK_HIGH, BLOCK_LOW, geometry_report
from steerkit.estimators import STEERERS

CONSTRUCTIONS = {name: STEERERS[name] for name in ("pv", "unit_mean", "cluster")}  # GRACE's three


@dataclass
class Recommendation:
    """What GRACE advises for one concept, with the reasons in words.

    Attributes
    ----------
    construction : ``"pv"``, ``"unit_mean"`` or ``"cluster"``.
    search_space : ``"top15_pl"`` or ``"union_pl_ra"``.
    layers : the recommended layer set (sorted).
    n_trials : suggested TPE budget (steerkit's heuristic from granularity).
    pilot : True when block structure is ambiguous (40–60 % of layers): compare
        constructions on a small pilot before committing.
    reasons : one sentence per decision.
    statistics : the summary statistics the rules read.
    """

    construction: str
    search_space: str
    layers: list[int]
    n_trials: int
    pilot: bool
    reasons: list[str] = field(default_factory=list)
    statistics: dict = field(default_factory=dict)

    def __str__(self) -> str:
        head = (f"construction={self.construction}, search space={self.search_space} "
                f"({len(self.layers)} layers), budget={self.n_trials} trials" + (", run a pilot" if self.pilot else ""))
        return "\n".join([head] + [f"  - {reason}" for reason in self.reasons])


class GraceRecommender(MetaEstimatorMixin, BaseEstimator):
    """Meta-estimator: read an ActivationSet's geometry, apply GRACE's rules, fit the choice.

    Rules (REFERENCE: GRACE recommender), each threshold a parameter with the paper's default:

    - search space: ``union_pl_ra`` (top-k 𝒜^PL ∪ top-k 𝒜^RA layers) if the PL/RA profile
      correlation is below ``pl_ra_threshold``, else ``top15_pl`` (top-k 𝒜^PL layers);
    - construction: ``cluster`` if block structure holds on ≥ ``cluster_share`` of layers
      (between ``pilot_share`` and ``cluster_share``: advise a pilot); else ``unit_mean`` if
      the magnitude CV exceeds ``magnitude_cv_threshold`` (off by default, the paper uses 0.45
      for Gemma-3-27B only); else ``pv``;
    - budget: granularity is reported, not a rule in the paper; steerkit turns it into a
      suggested trial count (``budget_trials`` for G ≤ ``granularity_levels[0]``, 1.6× up to
      ``granularity_levels[1]``, 2.4× above) since higher G means slower search and a lower
      ceiling.

    Parameters
    ----------
    top_k, pl_ra_threshold, cluster_share, pilot_share, magnitude_cv_threshold : rules above.
    block_low, block_high : cosine thresholds of block structure.
    budget_trials, granularity_levels : budget heuristic.
    coefficient : strength given to the fitted steerer.

    Attributes
    ----------
    report_ : :class:`~steerkit.diagnostics.GeometryReport`.
    recommendation_ : :class:`Recommendation`.
    layers_ : array of recommended layers.
    best_estimator_ : the recommended steerer, fitted on the RA activations (all layers).
    """

    def __init__(self, *, top_k: int = 15, pl_ra_threshold: float = 0.2, cluster_share: float = 0.6,
                 pilot_share: float = 0.4, magnitude_cv_threshold: float | None = None,
                 block_low: float = BLOCK_LOW, block_high: float = BLOCK_HIGH, budget_trials: int = 50,
                 granularity_levels: tuple[float, float] = (1.0, 1.15), coefficient: float = 1.0):
        self.top_k = top_k
        self.pl_ra_threshold = pl_ra_threshold
        self.cluster_share = cluster_share
        self.pilot_share = pilot_share
        self.magnitude_cv_threshold = magnitude_cv_threshold
        self.block_low = block_low
        self.block_high = block_high
        self.budget_trials = budget_trials
        self.granularity_levels = granularity_levels
        self.coefficient = coefficient

    def fit(self, activation_set, y=None):
        """Compute the geometry of ``activation_set``, decide, and fit the chosen steerer."""
        self.report_ = geometry_report(activation_set, low=self.block_low, high=self.block_high)
        self.recommendation_ = self._decide(self.report_)
        self.layers_ = np.asarray(self.recommendation_.layers)
        steerer = CONSTRUCTIONS[self.recommendation_.construction](coefficient=self.coefficient)
        X, y, metadata = activation_set.steerer_inputs("response_avg")
        self.best_estimator_ = steerer.fit(X, y, **metadata)
        return self

    # -- the rules -------------------------------------------------------------------------
    def _decide(self, report) -> Recommendation:
        s = report.summary
        reasons = []
        top_pl = [int(v) for v in report.top_alignment_layers(self.top_k, "pl")]
        r = s["pl_ra_correlation"]
        if np.isfinite(r) and r >= self.pl_ra_threshold:
            space, layers = "top15_pl", sorted(top_pl)
            reasons.append(f"PL/RA alignment profiles agree (r = {r:.2f} ≥ {self.pl_ra_threshold}): search the "
                           f"top-{self.top_k} layers by prompt-boundary alignment.")
        else:
            top_ra = [int(v) for v in report.top_alignment_layers(self.top_k, "ra")]
            space, layers = "union_pl_ra", sorted(set(top_pl) | set(top_ra))
            shown = "undefined" if not np.isfinite(r) else f"{r:.2f} < {self.pl_ra_threshold}"
            reasons.append(f"PL/RA alignment profiles disagree (r = {shown}): search the union of the top-"
                           f"{self.top_k} PL and RA layers ({len(layers)} layers).")

        share, cv = s["block_structure_share"], s["magnitude_cv"]
        pilot = False
        if share >= self.cluster_share:
            construction = "cluster"
            reasons.append(f"Instruction pairs split into blocks on {share:.0%} of layers (≥ {self.cluster_share:.0%}): "
                           "average only the pairs that agree (cluster).")
        else:
            if share >= self.pilot_share:
                pilot = True
                reasons.append(f"Block structure on {share:.0%} of layers is ambiguous ({self.pilot_share:.0%}–"
                               f"{self.cluster_share:.0%}): run a small pilot comparing cluster with the choice below.")
            if self.magnitude_cv_threshold is not None and cv > self.magnitude_cv_threshold:
                construction = "unit_mean"
                reasons.append(f"Difference magnitudes vary a lot (CV = {cv:.2f} > {self.magnitude_cv_threshold}): "
                               "unit-normalise before averaging (unit_mean) so a few large contrasts do not dominate.")
            else:
                construction = "pv"
                why = ("the magnitude rule is off" if self.magnitude_cv_threshold is None
                       else f"CV = {cv:.2f} ≤ {self.magnitude_cv_threshold}")
                reasons.append(f"No dominant block structure ({share:.0%} of layers) and {why} (magnitude CV "
                               f"{cv:.2f}): the plain mean difference (pv).")

        g = s["granularity"]
        low, high = self.granularity_levels
        if not np.isfinite(g) or g <= 0:
            n_trials = int(round(self.budget_trials * 2.4))
            reasons.append(f"Granularity is undefined or negative (G = {g:.2f}): instruction pairs disagree even "
                           f"within questions; treat the concept as hard and budget about {n_trials} trials.")
        elif g <= low:
            n_trials = self.budget_trials
            reasons.append(f"Granularity G = {g:.2f}: one stable direction across questions; a standard budget "
                           f"({n_trials} trials) should reach the ceiling quickly.")
        else:
            factor = 1.6 if g <= high else 2.4
            n_trials = int(round(self.budget_trials * factor))
            reasons.append(f"Granularity G = {g:.2f} > {low}: the direction rotates across questions; expect "
                           f"slower search and a lower ceiling, budget about {n_trials} trials.")
        statistics = {k: s[k] for k in ("alignment_pl_max", "alignment_pl_best_layer", "granularity", "magnitude_cv",
                                          "pl_ra_correlation", "block_structure_share", "eta2_prompt",
                                          "eta2_question", "eta2_interaction") if k in s}
        return Recommendation(construction, space, layers, n_trials, pilot, reasons, statistics)

    # -- use it ----------------------------------------------------------------------------
    def transform(self, X):
        """``best_estimator_.transform(X)``: activations plus the recommended vector."""
        return self.best_estimator_.transform(X)

    def decision_function(self, X):
        """Projection of ``X`` on the recommended direction."""
        return self.best_estimator_.decision_function(X)

    def make_search(self, model, scoring, *, n_trials: int | None = None, coefficients=None, random_state=None,
                    max_new_tokens: int = 64, batch_size: int = 16, **search_params):
        """A :class:`~steerkit.model_selection.TPESearchSteer` over the recommended layers.

        The estimator is a ``SteeredModel`` with an unfitted clone of the recommended steerer;
        ``n_trials`` defaults to the recommended budget; extra keyword arguments go to the
        search (``cv``, ``storage``, ``pruner``, ...).
        """
        from steerkit.model_selection import GRACE_COEFFICIENTS, TPESearchSteer, grace_space
        from steerkit.steering import SteeredModel

        rec = self.recommendation_
        estimator = SteeredModel(model, clone(self.best_estimator_), max_new_tokens=max_new_tokens,
                                 batch_size=batch_size)
        space = grace_space(model.n_blocks, layers=rec.layers, coefficients=coefficients or GRACE_COEFFICIENTS)
        return TPESearchSteer(estimator, space, scoring, n_trials=n_trials or rec.n_trials,
                              random_state=random_state, **search_params)
