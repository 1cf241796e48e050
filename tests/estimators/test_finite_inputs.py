"""Non-finite and absurd values are refused where they enter a steerer."""

import warnings

import numpy as np
import pytest

from steerkit.estimators import ClusterSteerer, PCASteerer, PVSteerer, UnitMeanSteerer

STEERER_TYPES = [PVSteerer, UnitMeanSteerer, ClusterSteerer, PCASteerer]
BAD_COEFFICIENTS = [float("nan"), float("inf"), -float("inf"), 1e30, -2e4, 10000.5]


def _differences(seed=0):
    return np.random.default_rng(seed).normal(size=(6, 4))


@pytest.mark.parametrize("steerer_type", STEERER_TYPES)
@pytest.mark.parametrize("value", BAD_COEFFICIENTS)
def test_fit_refuses_a_non_finite_or_absurd_coefficient(steerer_type, value):
    with pytest.raises(ValueError, match=r"coefficient=.* finite number between -10000 and 10000"):
        steerer_type(coefficient=value).fit(_differences(), instruction_ids=np.arange(6) % 2)


@pytest.mark.parametrize("steerer_type", STEERER_TYPES)
@pytest.mark.parametrize("value", BAD_COEFFICIENTS)
def test_set_params_refuses_a_bad_coefficient_and_keeps_the_old_one(steerer_type, value):
    steerer = steerer_type(coefficient=2.0)
    with pytest.raises(ValueError, match="coefficient="):
        steerer.set_params(coefficient=value)
    assert steerer.coefficient == 2.0


def test_transform_refuses_a_coefficient_assigned_after_fit():
    steerer = PVSteerer().fit(_differences())
    steerer.coefficient = float("nan")
    with pytest.raises(ValueError, match="coefficient=nan"):
        steerer.transform(np.zeros((1, 4)))


def test_fit_refuses_activations_whose_vector_overflows():
    X = np.array([[3e38, 0.0], [-3e38, 0.0]], dtype=np.float32)
    with pytest.raises(ValueError, match="vector_ contains 1 NaN or infinite"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        PVSteerer().fit(X, [1, 0])


def test_cluster_without_instruction_ids_warns_that_it_is_pv():
    with pytest.warns(UserWarning, match="without instruction_ids.*PVSteerer"):
        ClusterSteerer().fit(_differences())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ClusterSteerer().fit(_differences(), instruction_ids=np.arange(6) % 3)
