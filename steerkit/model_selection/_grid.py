"""Exhaustive search over a parameter grid of a ``SteeredModel``."""

from __future__ import annotations

from sklearn.model_selection import ParameterGrid

from steerkit.model_selection._base import BaseSearchSteer


class GridSearchSteer(BaseSearchSteer):
    """Evaluate every configuration of ``param_grid``, like ``GridSearchCV``.

    Parameters
    ----------
    estimator : a ``SteeredModel`` (or any estimator with ``fit(activations)`` and
        ``generate(questions)``).
    param_grid : dict (or list of dicts) of parameter name → list of values, e.g.
        ``{"layer": [5, 10, 15], "steerer__coefficient": [1, 2, 3]}``; steerer types too:
        ``{"steerer": [PVSteerer(), UnitMeanSteerer()]}``.
    scoring : a steerkit judge (``SteerScorer``).
    layers : optional restricted layer set; replaces the grid's ``"layer"`` values.
    cv : ``None``, an int (``QuestionKFold``) or a question splitter.
    refit : refit the best configuration as ``best_estimator_`` (or a callable
        ``cv_results_ -> index``).
    n_batch : configurations answered together, in one per-row-steered generation (each
        row steered by its own configuration; estimators without ``interventions()`` answer
        one at a time). Scores equal one-at-a-time evaluation; larger batches amortise the
        per-token cost of generation.
    n_jobs : joblib workers over batches (processes; each loads the model once).
    cache : an :class:`EvaluationCache` to share judged answers between searches.
    progress : show a progress bar.

    Attributes
    ----------
    cv_results_ : dict of arrays (``pandas.DataFrame(search.cv_results_)``), one row per
        configuration: ``params``, ``param_*``, ``split*_test_score``, ``mean_test_score``,
        ``std_test_score``, ``rank_test_score``, ``mean_concept``, ``mean_coherence``,
        ``n_missing``, ``seconds`` (a batch's time shared among its configurations),
        ``cached``, ``state``.
    best_params_, best_score_, best_index_, best_estimator_, n_splits_ : as in sklearn.
    history_ : DataFrame of trials in evaluation order with ``score`` and ``best_so_far``.
    """

    def __init__(self, estimator=None, param_grid=None, scoring=None, *, layers=None, cv=None, refit=True,
                 n_batch=1, n_jobs=None, cache=None, progress=True):
        self.estimator = estimator
        self.param_grid = param_grid
        self.scoring = scoring
        self.layers = layers
        self.cv = cv
        self.refit = refit
        self.n_batch = n_batch
        self.n_jobs = n_jobs
        self.cache = cache
        self.progress = progress

    def _candidates(self) -> list[dict]:
        if not self.param_grid:
            raise ValueError("param_grid must name at least one parameter, e.g. {'layer': [5, 10]}")
        grids = self.param_grid if isinstance(self.param_grid, list) else [self.param_grid]
        return list(ParameterGrid([self._apply_layers(dict(g)) for g in grids]))

    def _run_search(self, evaluate_candidates) -> None:
        evaluate_candidates(self._candidates())
