"""Question-level cross-validation: folds over evaluation questions."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import KFold


class QuestionKFold:
    """K-fold over *distinct* evaluation questions (a repeated question stays in one fold).

    Like ``GroupKFold`` with the question text as the group. ``split(questions)`` yields
    ``(train_index, test_index)`` arrays indexing ``questions``.

    Parameters
    ----------
    n_splits : number of folds (>= 2).
    shuffle, random_state : as in :class:`sklearn.model_selection.KFold`.
    """

    def __init__(self, n_splits: int = 5, *, shuffle: bool = False, random_state=None):
        if n_splits < 2:
            raise ValueError(f"n_splits must be >= 2, got {n_splits}")
        self.n_splits = n_splits
        self.shuffle = shuffle
        self.random_state = random_state

    def __repr__(self) -> str:
        return f"QuestionKFold(n_splits={self.n_splits}, shuffle={self.shuffle}, random_state={self.random_state})"

    def get_n_splits(self, questions=None, y=None, groups=None) -> int:
        return self.n_splits

    def split(self, questions, y=None, groups=None):
        questions = list(questions)
        unique, codes = np.unique(np.asarray(questions, dtype=object).astype(str), return_inverse=True)
        if unique.size < self.n_splits:
            raise ValueError(
                f"cannot split {unique.size} distinct questions into {self.n_splits} folds; "
                "use fewer folds or more evaluation questions"
            )
        folds = KFold(self.n_splits, shuffle=self.shuffle, random_state=self.random_state)
        for train_q, test_q in folds.split(unique):
            yield np.flatnonzero(np.isin(codes, train_q)), np.flatnonzero(np.isin(codes, test_q))


def check_question_cv(cv) -> QuestionKFold | object | None:
    """``None`` → no folds; an int → :class:`QuestionKFold`; a splitter object → itself."""
    if cv is None:
        return None
    if isinstance(cv, (int, np.integer)) and not isinstance(cv, bool):
        return QuestionKFold(int(cv))
    if hasattr(cv, "split") and hasattr(cv, "get_n_splits"):
        return cv
    raise ValueError(f"cv must be None, an int or a splitter with split()/get_n_splits(); got {cv!r}")
