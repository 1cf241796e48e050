"""``cross_val_steer``: choose on some evaluation questions, score on held-out ones."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import clone

from steerkit.model_selection._base import BaseSearchSteer, check_scoring
from steerkit.model_selection._split import QuestionKFold, check_question_cv


def cross_val_steer(estimator, activations, questions, scoring=None, *, cv=5) -> pd.DataFrame:
    """Held-out utility of ``estimator`` per question fold.

    For a search (``GridSearchSteer`` / ``TPESearchSteer``) this is nested cross-validation:
    per fold, the search is fitted on the training questions and its best configuration is
    scored on the held-out questions, so the reported utility is not inflated by selection.
    For a plain ``SteeredModel`` it is fitted once and scored on every held-out fold.

    Returns one row per fold: ``fold``, ``test_score``, ``n_test`` and, for searches,
    ``best_score`` (on the training questions) and ``best_params``.
    """
    questions = list(questions)
    splitter = check_question_cv(cv) or QuestionKFold(5)
    is_search = isinstance(estimator, BaseSearchSteer)
    scoring = check_scoring(scoring if scoring is not None else getattr(estimator, "scoring", None))
    fitted = None if is_search else clone(estimator).fit(activations)
    rows = []
    for fold, (train, test) in enumerate(splitter.split(questions)):
        held_out = [questions[i] for i in test]
        row = {"fold": fold, "n_test": len(held_out)}
        if is_search:
            search = clone(estimator).fit(activations, [questions[i] for i in train])
            row.update(best_score=search.best_score_, best_params=search.best_params_)
            model = search.best_estimator_
        else:
            model = fitted
        row["test_score"] = float(scoring(model, held_out))
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame.attrs["mean_test_score"] = float(np.nanmean(frame["test_score"]))
    return frame
