"""RePSSteerer on a tiny model: +v prefers the targets, its null space the opposites; seeded; files."""

import numpy as np
import pytest
import torch

from steerkit.lm import Site
from steerkit.lm.interventions import LearnedVector
from steerkit.training.data import steered_answer_log_probs
from steerkit.training.preference_data import encode_preferences
from steerkit.training.reps import NullSpace, RePSSteerer
from tests.training.test_bipo import DATA


def _fit(lm, **params):
    settings = dict(layer=2, learning_rate=0.1, batch_size=2, epochs=3, progress=False)
    return RePSSteerer(lm, **{**settings, **params}).fit(DATA)


@pytest.fixture(scope="module")
def fitted(tiny_llama):
    return _fit(tiny_llama)


def margin(lm, interventions) -> float:
    """Mean log π(target) − log π(opposite) (nats) with ``interventions`` installed."""
    encoded = encode_preferences(lm, DATA)
    with torch.no_grad():
        target, opposite = steered_answer_log_probs(lm, encoded.batch(range(len(DATA)), lm.tokenizer.pad_token_id),
                                                    interventions).view(2, -1)
    return float((target - opposite).mean())


def test_steering_prefers_the_targets_and_the_null_space_the_opposites(tiny_llama, fitted):
    unsteered = margin(tiny_llama, [])
    untrained = RePSSteerer(tiny_llama, layer=2)._fresh_interventions(tiny_llama)
    assert margin(tiny_llama, fitted.interventions()) > max(unsteered, margin(tiny_llama, untrained)) + 1.0
    assert margin(tiny_llama, fitted.suppression_interventions()) < margin(tiny_llama, fitted.interventions()) - 1.0
    assert fitted.n_trainable_parameters_ == tiny_llama.hidden_size and len(fitted.history_.loss) == 6


def test_null_space_removes_only_the_positive_component_along_v():
    source = LearnedVector(3, site=Site(1))
    with torch.no_grad():
        source.vector.copy_(torch.tensor([0.0, 2.0, 0.0]))
    hidden = torch.tensor([[[1.0, 3.0, 5.0], [1.0, -3.0, 5.0]]])
    assert NullSpace(source)(hidden).tolist() == [[[1.0, 0.0, 5.0], [1.0, -3.0, 5.0]]]
    assert NullSpace(source).vector is source.vector  # shared: training the suppression trains v


def test_the_seed_sets_the_start_and_the_result(tiny_llama, fitted):
    first = RePSSteerer(tiny_llama, layer=2)._fresh_interventions(tiny_llama)[0].vector
    assert torch.equal(first, RePSSteerer(tiny_llama, layer=2)._fresh_interventions(tiny_llama)[0].vector)
    assert first.abs().max() <= tiny_llama.hidden_size ** -0.5 and first.abs().min() > 0
    assert torch.equal(_fit(tiny_llama).interventions()[0].vector, fitted.interventions()[0].vector)
    assert not torch.equal(_fit(tiny_llama, seed=3).interventions()[0].vector, fitted.interventions()[0].vector)


def test_save_load_round_trip_and_coefficient(tiny_llama, fitted, tmp_path):
    fitted.save(tmp_path / "reps")
    loaded = RePSSteerer.load(tmp_path / "reps", tiny_llama, progress=False)
    assert torch.equal(loaded.interventions()[0].vector, fitted.interventions()[0].vector)
    assert loaded.layer == 2 and loaded.learning_rate == 0.1
    questions = list(DATA.questions[:2])
    assert loaded.generate(questions, max_new_tokens=4) == fitted.generate(questions, max_new_tokens=4)
    assert loaded.set_params(coefficient=0.0).generate(questions, max_new_tokens=4) == \
        tiny_llama.generate(questions, max_new_tokens=4)


def test_unbalanced_or_empty_data_is_refused(tiny_llama):
    steerer = RePSSteerer(tiny_llama, layer=2, progress=False)
    with pytest.raises(ValueError, match="unbalanced"):
        steerer.fit(DATA.questions, [[t, t] for t in DATA.targets])
    with pytest.raises(ValueError, match="no triple"):
        steerer.fit([], np.empty((0, 2)))
