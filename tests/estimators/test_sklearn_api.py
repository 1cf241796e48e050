"""scikit-learn API conformance of the steerers."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import sklearn
from joblib import Parallel, delayed
from sklearn.base import clone
from sklearn.exceptions import UnsetMetadataPassedError
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.estimator_checks import parametrize_with_checks

from steerkit.estimators import (
    BaseSteerer,
    ClusterSteerer,
    PCASteerer,
    PVSteerer,
    UnitMeanSteerer,
)

STEERERS = [PVSteerer(), UnitMeanSteerer(), ClusterSteerer(), PCASteerer()]


@parametrize_with_checks(STEERERS)
@pytest.mark.filterwarnings("ignore:Pairing .* by order of occurrence:UserWarning")
@pytest.mark.filterwarnings("ignore:ClusterSteerer was fitted without instruction_ids:UserWarning")
@pytest.mark.filterwarnings("ignore:ValueError occurred during set_params of param coefficient:UserWarning")
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture
def paired_data():
    """Shuffled labelled 2-D samples of 6 contrasts with their contrast ids."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(12, 4))
    y = np.tile([0, 1], 6)
    contrast_ids = np.repeat(np.arange(6), 2)
    order = rng.permutation(12)
    return X[order], y[order], contrast_ids[order]


def steerer_instances():
    return [
        PVSteerer(coefficient=2.0),
        UnitMeanSteerer(coefficient=-1.5),
        ClusterSteerer(coefficient=0.5, agreement_threshold=0.2),
        PCASteerer(coefficient=3.0, method="pca_center", scale="unit"),
    ]


@pytest.mark.parametrize("steerer", steerer_instances(), ids=lambda s: type(s).__name__)
def test_params_round_trip_through_clone_and_set_params(steerer):
    params = steerer.get_params()
    cloned = clone(steerer)
    assert cloned.get_params() == params
    assert cloned is not steerer
    cloned.set_params(coefficient=7.0)
    assert cloned.coefficient == 7.0
    assert steerer.get_params() == params


def test_all_steerers_share_the_base_class():
    assert all(isinstance(steerer, BaseSteerer) for steerer in STEERERS)


@pytest.mark.parametrize("steerer", steerer_instances(), ids=lambda s: type(s).__name__)
def test_pickle_round_trip_gives_identical_transform(steerer, paired_data):
    X, y, contrast_ids = paired_data
    steerer.fit(X, y, contrast_ids=contrast_ids)
    restored = pickle.loads(pickle.dumps(steerer))
    np.testing.assert_array_equal(restored.transform(X), steerer.transform(X))
    np.testing.assert_array_equal(
        restored.decision_function(X), steerer.decision_function(X)
    )


def _routed_pipeline(steerer):
    steerer.set_fit_request(contrast_ids=True)
    return Pipeline([("identity", FunctionTransformer()), ("steer", steerer)])


def test_pipeline_routes_contrast_ids_with_metadata_routing(paired_data):
    X, y, contrast_ids = paired_data
    expected = PVSteerer().fit(X, y, contrast_ids=contrast_ids)
    with sklearn.config_context(enable_metadata_routing=True):
        pipeline = _routed_pipeline(PVSteerer())
        pipeline.fit(X, y, contrast_ids=contrast_ids)
        fitted = pipeline.named_steps["steer"]
        np.testing.assert_allclose(fitted.vector_, expected.vector_)
        np.testing.assert_allclose(pipeline.transform(X), expected.transform(X))
        bad_ids = np.where((y == 1) & (contrast_ids == 0), 1, contrast_ids)
        with pytest.raises(ValueError, match="contrast id 0 has 0 positive"):
            pipeline.fit(X, y, contrast_ids=bad_ids)


def test_routed_contrast_ids_change_the_pairing(paired_data):
    X, y, contrast_ids = paired_data
    expected = UnitMeanSteerer().fit(X, y, contrast_ids=contrast_ids).vector_
    with sklearn.config_context(enable_metadata_routing=True):
        pipeline = _routed_pipeline(UnitMeanSteerer())
        pipeline.fit(X, y, contrast_ids=contrast_ids)
    np.testing.assert_allclose(pipeline.named_steps["steer"].vector_, expected)
    assert not np.allclose(UnitMeanSteerer().fit(X, y).vector_, expected)


def test_pipeline_refuses_unrequested_contrast_ids(paired_data):
    X, y, contrast_ids = paired_data
    with sklearn.config_context(enable_metadata_routing=True):
        pipeline = Pipeline([("identity", FunctionTransformer()), ("steer", PVSteerer())])
        with pytest.raises(UnsetMetadataPassedError, match="contrast_ids"):
            pipeline.fit(X, y, contrast_ids=contrast_ids)


def test_pipeline_routes_instruction_ids_to_cluster_steerer():
    rng = np.random.default_rng(1)
    differences = rng.normal(size=(8, 4))
    groups = np.repeat([0, 1, 2, 3], 2)
    expected = ClusterSteerer().fit(differences, instruction_ids=groups)
    with sklearn.config_context(enable_metadata_routing=True):
        steerer = ClusterSteerer().set_fit_request(instruction_ids=True)
        pipeline = Pipeline([("identity", FunctionTransformer()), ("steer", steerer)])
        pipeline.fit(differences, instruction_ids=groups)
    fitted = pipeline.named_steps["steer"]
    np.testing.assert_allclose(fitted.vector_, expected.vector_)
    np.testing.assert_array_equal(fitted.groups_, [0, 1, 2, 3])


def _steer(steerer, coefficient, X, y, contrast_ids):
    steerer = clone(steerer).set_params(coefficient=coefficient)
    return steerer.fit(X, y, contrast_ids=contrast_ids).transform(X)


@pytest.mark.parametrize("steerer", steerer_instances(), ids=lambda s: type(s).__name__)
def test_joblib_parallel_matches_sequential(steerer, paired_data):
    X, y, contrast_ids = paired_data
    coefficients = [-2.0, 0.0, 0.5, 4.0]
    sequential = [_steer(steerer, c, X, y, contrast_ids) for c in coefficients]
    parallel = Parallel(n_jobs=2)(
        delayed(_steer)(steerer, c, X, y, contrast_ids) for c in coefficients
    )
    for expected, result in zip(sequential, parallel):
        np.testing.assert_array_equal(result, expected)
