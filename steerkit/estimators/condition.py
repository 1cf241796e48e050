"""``ConditionDetector``: the condition of conditional activation steering (CAST, Lee et al. 2024,
arXiv 2409.05907) fitted on activation arrays.

A condition direction ``u`` (unit, ``(d,)``) is learned from activations of prompts labelled
on-condition (the positive class) or off-condition; a prompt meets the condition when its
projection ``x · u`` reaches ``threshold_``. The threshold is the point of the ROC curve of the
training projections that maximises Youden's J (``tpr - fpr``) or F1, placed halfway to the next
lower projection so that it does not sit on a training sample.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.metrics import roc_curve
from sklearn.utils import ClassifierTags
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, validate_data

from ._base import unit_vectors

METHODS = ("mean_difference", "pca")
CRITERIA = ("youden", "f1")


def condition_direction(X: np.ndarray, is_positive: np.ndarray, method: str) -> np.ndarray:
    """Unit direction ``(d,)`` along which positives (``is_positive``, ``(n,)`` bool) of ``X``
    ``(n, d)`` project higher: the difference of class means, or (``"pca"``) the first principal
    component of ``X`` centred on each class's mean midpoint, signed towards the positives."""
    difference = X[is_positive].mean(0) - X[~is_positive].mean(0)
    if method == "mean_difference":
        return unit_vectors(difference)
    centred = X - (X[is_positive].mean(0) + X[~is_positive].mean(0)) / 2
    component = np.linalg.svd(centred, full_matrices=False)[2][0]
    return component if component @ difference >= 0 else -component


def best_threshold(y_true: np.ndarray, scores: np.ndarray, criterion: str) -> tuple[float, dict]:
    """Threshold on ``scores`` (``(n,)``) maximising ``criterion`` for the bool targets ``y_true``,
    and the ROC as ``{"fpr", "tpr", "thresholds"}`` (sklearn's ``roc_curve``, every point kept)."""
    fpr, tpr, thresholds = roc_curve(y_true, scores, drop_intermediate=False)
    if criterion == "youden":
        value = tpr - fpr
    else:
        positives, negatives = y_true.sum(), (~y_true).sum()
        true_pos, false_pos = tpr * positives, fpr * negatives
        value = 2 * true_pos / (true_pos + false_pos + positives)
    best = int(np.argmax(value))
    lower = thresholds[best + 1] if best + 1 < len(thresholds) else thresholds[best] - 1.0
    threshold = scores.max() + 1.0 if best == 0 else (thresholds[best] + lower) / 2
    return float(threshold), {"fpr": fpr, "tpr": tpr, "thresholds": thresholds}


class ConditionDetector(ClassifierMixin, BaseEstimator):
    """Detect a condition from activations: ``projection(X) >= threshold_``.

    Parameters
    ----------
    method : ``"mean_difference"`` (default) or ``"pca"`` (see :func:`condition_direction`).
    criterion : ``"youden"`` (default, ``tpr - fpr``) or ``"f1"``: what the threshold maximises.

    Attributes
    ----------
    direction_ : ndarray (d,), the unit condition direction.
    threshold_ : float, in projection units (activation units along ``direction_``).
    roc_ : dict of ``fpr``, ``tpr``, ``thresholds`` arrays, the training ROC of the projections.
    classes_ : ndarray (2,), ``classes_[1]`` is the on-condition class.
    n_features_in_ : int, the width ``d``.
    """

    def __init__(self, method: str = "mean_difference", criterion: str = "youden"):
        self.method = method
        self.criterion = criterion

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags = ClassifierTags(multi_class=False)
        return tags

    def fit(self, X, y):
        """Learn the direction and threshold from activations ``X`` (n, d) and labels ``y`` (n,)."""
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.criterion not in CRITERIA:
            raise ValueError(f"criterion must be one of {CRITERIA}, got {self.criterion!r}")
        X, y = validate_data(self, X, y, dtype=(np.float64, np.float32))
        check_classification_targets(y)
        target = type_of_target(y, input_name="y")
        if target != "binary":
            raise ValueError(f"Only binary classification is supported. The type of the target is {target}: label "
                             "each prompt on-condition or off-condition (two classes)")
        self.classes_ = np.unique(y)
        if self.classes_.size != 2:
            raise ValueError(f"y holds one class only ({self.classes_.tolist()}): fit on both on-condition and "
                             "off-condition prompts")
        is_positive = y == self.classes_[1]
        self.direction_ = condition_direction(X.astype(np.float64), is_positive, self.method)
        self.threshold_, self.roc_ = best_threshold(is_positive, X @ self.direction_, self.criterion)
        return self

    def projection(self, X) -> np.ndarray:
        """``X · direction_``, shape ``(n,)``, activation units."""
        check_is_fitted(self)
        return validate_data(self, X, reset=False, dtype=(np.float64, np.float32)) @ self.direction_

    def decision_function(self, X) -> np.ndarray:
        """``projection(X) - threshold_`` (n,): >= 0 where the condition is met."""
        return self.projection(X) - self.threshold_

    def predict(self, X) -> np.ndarray:
        """``classes_[1]`` where the condition is met, else ``classes_[0]``."""
        met = self.decision_function(X) >= 0
        return self.classes_[met.astype(int)]
