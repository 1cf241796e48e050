"""ConditionDetector: CAST's condition direction and ROC threshold on activation arrays."""

import numpy as np
import pytest
from sklearn.metrics import precision_score, recall_score
from sklearn.utils.estimator_checks import parametrize_with_checks

from steerkit.estimators.condition import ConditionDetector


@parametrize_with_checks([ConditionDetector(), ConditionDetector(method="pca", criterion="f1")])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def _separable(n, rng, d=16, gap=3.0):
    """Two classes of unit-variance activations whose means differ by ``gap`` along a hidden axis."""
    axis = rng.normal(size=d)
    axis /= np.linalg.norm(axis)
    y = np.arange(n) % 2
    X = rng.normal(size=(n, d)) * 0.3 + np.outer(y * gap, axis) + 5.0  # an offset the direction must ignore
    return X, y, axis


@pytest.mark.parametrize("method", ["mean_difference", "pca"])
def test_separable_condition_is_detected_with_precision_and_recall_one(method):
    rng = np.random.default_rng(0)
    X, y, axis = _separable(80, rng)
    detector = ConditionDetector(method=method).fit(X[:40], y[:40])
    assert detector.direction_ @ axis > 0.9
    predicted = detector.predict(X[40:])
    assert precision_score(y[40:], predicted) == 1.0 and recall_score(y[40:], predicted) == 1.0


def test_threshold_lies_halfway_between_the_classes_on_the_roc_optimum():
    X = np.array([[0.0, 1.0], [1.0, 1.0], [3.0, 1.0], [4.0, 1.0]])
    detector = ConditionDetector().fit(X, [0, 0, 1, 1])
    np.testing.assert_allclose(detector.direction_, [1.0, 0.0])
    assert detector.threshold_ == pytest.approx(2.0)
    np.testing.assert_allclose(detector.decision_function(X), [-2.0, -1.0, 1.0, 2.0])
    assert detector.roc_["tpr"][-1] == 1.0 and detector.roc_["fpr"][0] == 0.0


@pytest.mark.parametrize("criterion, threshold", [("youden", 0.5), ("f1", 4.5)])
def test_youden_and_f1_pick_their_own_roc_points(criterion, threshold):
    # projections: positives 1, 5, 6; ten negatives. Youden: t=1 gives J=1-0.3=0.7 > 2/3 at t=5;
    # F1: t=5 gives 0.8 > 6/9 at t=1. The threshold sits halfway to the next lower projection.
    scores = np.array([1, 5, 6, 0, 2, 3, 4, -1, -2, -3, -4, -5, -6], dtype=float)
    y = np.array([1, 1, 1] + [0] * 10)
    X = np.column_stack([scores, np.zeros_like(scores)])
    detector = ConditionDetector(criterion=criterion).fit(X, y)
    assert detector.threshold_ == pytest.approx(threshold)


def test_labels_keep_their_classes_and_bad_options_are_refused():
    X = np.array([[0.0], [1.0], [3.0], [4.0]])
    assert list(ConditionDetector().fit(X, ["off", "off", "on", "on"]).predict([[3.5], [-1.0]])) == ["on", "off"]
    with pytest.raises(ValueError, match="criterion must be one of"):
        ConditionDetector(criterion="auc").fit(X, [0, 0, 1, 1])
    with pytest.raises(ValueError, match="Only binary classification"):
        ConditionDetector().fit(X, [0, 1, 2, 2])
