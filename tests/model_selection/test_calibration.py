"""Strength calibration by KL in bits: reaches the target, orders targets, works inside searches."""

import numpy as np
import pytest

from steerkit.estimators import PVSteerer
from steerkit.lm.interventions import AddVector
from steerkit.metrics import steering_kl_bits
from steerkit.model_selection import CalibratedSteeredModel, calibrate_coefficient
from steerkit.model_selection.calibration import NonMonotoneKLWarning

PROMPTS = ["What is a cloud?", "Name a colour.", "Why is the sea salty?"]


def _vector(lm, seed=0):  # the tiny random model saturates near 0.04 bits: targets stay below
    return np.random.default_rng(seed).normal(size=lm.hidden_size).astype(np.float32)


def _independent_kl(lm, vector, layer, coefficient, answers):
    steering = [AddVector(vector, site=layer, coefficient=coefficient)]
    return float(np.mean(steering_kl_bits(lm, PROMPTS, steering, answers=answers)))


@pytest.mark.parametrize("layer", [1, 3])
def test_calibrated_coefficient_reaches_the_target_and_larger_targets_need_more(tiny_llama, layer):
    vector = _vector(tiny_llama)
    answers = tiny_llama.generate(PROMPTS, max_new_tokens=6)
    found = {target: calibrate_coefficient(tiny_llama, vector, layer, PROMPTS, target, tolerance=0.05,
                                           answers=answers, start=0.001)
             for target in (0.005, 0.02)}
    for target, calibration in found.items():
        assert calibration.monotone
        assert _independent_kl(tiny_llama, vector, layer, calibration.coefficient, answers) == pytest.approx(target, rel=0.05)
    assert found[0.02].coefficient > found[0.005].coefficient > 0


def test_unreachable_and_bad_targets_are_one_line_errors(tiny_llama):
    zero = np.zeros(tiny_llama.hidden_size, dtype=np.float32)
    with pytest.raises(ValueError, match=r"target_kl_bits=0.5 is out of reach: .* choose a smaller target"):
        calibrate_coefficient(tiny_llama, zero, 2, PROMPTS[:1], 0.5, answers=["A cloud."], max_iter=100)
    with pytest.raises(ValueError, match="target_kl_bits must be a positive number of bits"):
        calibrate_coefficient(tiny_llama, zero, 2, PROMPTS[:1], 0.0)


def test_a_non_monotone_bracket_is_reported(tiny_llama, monkeypatch):
    import steerkit.model_selection.calibration as calibration

    bits = {1.0: 0.1, 2.0: 0.05, 4.0: 2.0}  # a larger coefficient giving less KL

    def fake_kl(lm, prompts, steering, **kwargs):
        return np.array([bits.get(steering[0].coefficient, 1.0)])

    monkeypatch.setattr(calibration, "steering_kl_bits", fake_kl)
    with pytest.warns(NonMonotoneKLWarning, match="not monotone in the coefficient at layer 2"):
        result = calibrate_coefficient(tiny_llama, _vector(tiny_llama), 2, PROMPTS[:1], 1.0, answers=["x"],
                                       max_iter=4)
    assert not result.monotone and result.evaluations[:3] == ((1.0, 0.1), (2.0, 0.05), (4.0, 2.0))


def test_calibrated_steered_model_steers_with_the_calibrated_coefficient(tiny_llama):
    rng = np.random.default_rng(0)
    differences = rng.normal(size=(6, tiny_llama.n_blocks + 1, tiny_llama.hidden_size)).astype(np.float32)
    model = CalibratedSteeredModel(tiny_llama, PVSteerer(), layer=2, max_new_tokens=6, target_kl_bits=0.02,
                                   calibration_questions=PROMPTS).fit(differences)
    (steering,) = model.interventions()
    assert steering.coefficient == model.calibration_.coefficient == model.coefficient_
    answers = tiny_llama.generate(PROMPTS, max_new_tokens=6)
    assert float(np.mean(steering_kl_bits(tiny_llama, PROMPTS, [steering], answers=answers))) == pytest.approx(0.02, rel=0.05)
    assert model.get_params()["target_kl_bits"] == 0.02
