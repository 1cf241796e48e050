"""Shared machinery of the steering searches: evaluation, caching, results, refit."""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone

from steerkit.model_selection._cache import EvaluationCache, config_key, data_fingerprint, judge_fingerprint, param_label
from steerkit.model_selection._efficiency import best_so_far, trials_to_fraction
from steerkit.model_selection._split import check_question_cv


def check_scoring(scoring):
    """A judge with ``evaluate(model, questions) -> table`` and ``aggregate(table) -> float``."""
    if not (hasattr(scoring, "evaluate") and hasattr(scoring, "aggregate")):
        raise TypeError(
            "scoring must be a steerkit judge (SteerScorer: evaluate() and aggregate()), e.g. "
            "EmbeddingJudge, LLMJudge or make_steer_scorer(fn); got " + repr(scoring)
        )
    return scoring


def configured(estimator, params: dict):
    """``clone(estimator)`` with ``params`` set; estimator-valued params are cloned too, so the
    objects in a search space are never mutated by nested settings (``steerer__coefficient``)."""
    fresh = {k: clone(v) if hasattr(v, "get_params") and not isinstance(v, type) else v for k, v in params.items()}
    return clone(estimator).set_params(**fresh)


def evaluate_config(estimator, params: dict, activations, questions: list[str], scoring) -> tuple[pd.DataFrame, float]:
    """Fit ``clone(estimator).set_params(**params)`` on ``activations``, answer and judge.

    Returns the judged table (one row per question, ``RESPONSE_COLUMNS``) and the seconds
    it took.
    """
    start = time.perf_counter()
    model = configured(estimator, params).fit(activations)
    table = scoring.evaluate(model, questions)
    return table, time.perf_counter() - start


class BaseSearchSteer(BaseEstimator):
    """Common parts of :class:`GridSearchSteer` and :class:`TPESearchSteer`.

    Subclasses implement ``_run(activations, questions) -> list[dict]`` returning one record
    per trial (in trial order) with keys ``params``, ``table`` (judged rows for the questions
    answered, possibly fewer when pruned), ``seconds``, ``cached``, ``state``.
    """

    def _prepare(self, activations, questions):
        questions = list(questions)
        if not questions:
            raise ValueError("fit needs at least one evaluation question")
        check_scoring(self.scoring)
        if self.estimator is None:
            raise ValueError("a search needs an estimator, e.g. SteeredModel(model, PVSteerer())")
        self._cache_ = self.cache if self.cache is not None else EvaluationCache()
        self._context_ = {"activations": data_fingerprint(activations), "judge": judge_fingerprint(self.scoring)}
        cv = check_question_cv(self.cv)
        return questions, (list(cv.split(questions)) if cv is not None else None)

    def _apply_layers(self, space: dict) -> dict:
        if self.layers is None:
            return space
        layers = [int(layer) for layer in self.layers]
        if not layers:
            raise ValueError("layers must not be empty")
        return {**space, "layer": layers}

    def _key(self, params: dict) -> str:
        """Cache key of a configuration: every parameter of the configured estimator (model
        name, construction, generation length, ...), not only the searched ones, and the
        fingerprints of the activations it is fitted on and of the judge, so a shared cache or
        study never hands one configuration's answers to another, nor answers fitted on other
        data or judged by another judge."""
        return config_key(configured(self.estimator, params).get_params(deep=True), self._context_)

    def fit(self, activations, questions):
        """Search configurations: fit each on ``activations``, judge answers to ``questions``.

        Parameters
        ----------
        activations : ``ActivationSet`` (or whatever the estimator's ``fit`` takes).
        questions : list of evaluation questions (str); with ``cv`` they are split into folds
            and each configuration gets one score per held-out fold.
        """
        questions, splits = self._prepare(activations, questions)
        records = self._run(activations, questions)
        self.cv_results_ = self._results(records, questions, splits)
        self.history_ = self._history(records)
        self.n_splits_ = len(splits) if splits else 1
        scores = np.asarray(self.cv_results_["mean_test_score"], dtype=float)
        if np.all(np.isnan(scores)):
            raise RuntimeError("every configuration failed to get a score (all answers missing or pruned)")
        self.best_index_ = self._best_index(scores)
        self.best_params_ = self.cv_results_["params"][self.best_index_]
        self.best_score_ = float(scores[self.best_index_])
        if self.refit:
            self.best_estimator_ = configured(self.estimator, self.best_params_).fit(activations)
        return self

    def _best_index(self, scores: np.ndarray) -> int:
        if callable(self.refit):
            return int(self.refit(self.cv_results_))
        return int(np.nanargmax(scores))

    def _results(self, records: list[dict], questions: list[str], splits) -> dict:
        results: dict[str, list] = {"params": [r["params"] for r in records]}
        for name in sorted({k for r in records for k in r["params"]}):
            results[f"param_{name}"] = [param_label(r["params"].get(name)) for r in records]
        fold_scores = []
        for r in records:
            table, complete = r["table"], r["state"] == "complete"
            if complete and list(table["question"]) != questions:
                raise ValueError(
                    "a finished trial was judged on other questions than the ones given to fit; "
                    "resume a study with the same evaluation questions (or use a new study_name)"
                )
            if not complete:
                fold_scores.append([np.nan] * (len(splits) if splits else 1))
            elif splits:
                fold_scores.append([self.scoring.aggregate(table.iloc[test]) for _, test in splits])
            else:
                fold_scores.append([self.scoring.aggregate(table)])
        fold_scores = np.asarray(fold_scores, dtype=float)
        if splits:
            for k in range(len(splits)):
                results[f"split{k}_test_score"] = fold_scores[:, k].tolist()
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # failed and pruned trials: all-NaN rows
            results["mean_test_score"] = np.nanmean(fold_scores, axis=1) if fold_scores.size else []
            results["std_test_score"] = np.nanstd(fold_scores, axis=1) if fold_scores.size else []
        mean = np.asarray(results["mean_test_score"], dtype=float)
        results["rank_test_score"] = pd.Series(np.nan_to_num(mean, nan=-np.inf)).rank(ascending=False, method="min").astype(int).tolist()
        for column in ("concept", "coherence"):
            results[f"mean_{column}"] = [float(np.nanmean(r["table"][column])) if len(r["table"]) and r["table"][column].notna().any() else np.nan for r in records]
        results["n_missing"] = [int(r["table"]["utility"].isna().sum()) if len(r["table"]) else 0 for r in records]
        results["seconds"] = [r["seconds"] for r in records]
        results["cached"] = [r["cached"] for r in records]
        results["state"] = [r["state"] for r in records]
        return {k: (np.asarray(v) if k.startswith(("mean_", "std_", "rank_", "split")) else v) for k, v in results.items()}

    def _history(self, records: list[dict]) -> pd.DataFrame:
        scores = np.asarray(self.cv_results_["mean_test_score"], dtype=float)
        frame = pd.DataFrame({k.removeprefix("param_"): v for k, v in self.cv_results_.items() if k.startswith("param_")})
        frame.insert(0, "trial", np.arange(1, len(records) + 1))
        frame["score"] = scores
        frame["best_so_far"] = best_so_far(scores)
        frame["cached"] = self.cv_results_["cached"]
        frame["state"] = self.cv_results_["state"]
        frame["seconds"] = self.cv_results_["seconds"]
        return frame

    def trials_to(self, fraction: float = 0.95) -> int | None:
        """Trials (1-indexed) until the best-so-far score reached ``fraction`` of the final best."""
        return trials_to_fraction(self.history_["score"], fraction)

    # -- use the winner --------------------------------------------------------------------
    def _winner(self):
        if not hasattr(self, "best_estimator_"):
            raise AttributeError("best_estimator_ exists only after fit with refit=True")
        return self.best_estimator_

    def generate(self, questions, **kwargs) -> list[str]:
        """Answers of the best configuration."""
        return self._winner().generate(questions, **kwargs)

    def score(self, questions) -> float:
        """Utility of the best configuration on ``questions`` (e.g. held-out ones)."""
        return float(self.scoring(self._winner(), list(questions)))
