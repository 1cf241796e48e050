"""BiPOSteerer on a tiny model: +v prefers the targets, −v the opposites; seeded; files; bad data."""

import numpy as np
import pytest
import torch

from steerkit.lm.scoring import answer_log_probs
from steerkit.training import preference_data as preference_data_module
from steerkit.training.bipo import BiPOSteerer
from steerkit.training.data import steered_answer_log_probs
from steerkit.training.preference_data import PreferenceData, encode_preferences

DATA = PreferenceData(
    ("What is rain?", "Name a fruit.", "Where do ships sail?", "Who are you?"),
    ("Arr, the sky's grog, matey!", "A grog-soaked apple, arr!", "The seven seas, arr!", "A salty pirate, arr!"),
    ("Water falling from clouds.", "An apple.", "On the ocean.", "An assistant."),
)


def _fit(lm, **params):
    settings = dict(layer=2, learning_rate=0.1, batch_size=2, epochs=3, progress=False)
    return BiPOSteerer(lm, **{**settings, **params}).fit(DATA)


@pytest.fixture(scope="module")
def fitted(tiny_llama):
    return _fit(tiny_llama)


def margin(lm, steerer, coefficient) -> float:
    """Mean log π(target) − log π(opposite) (nats) with the vector scaled by ``coefficient``."""
    encoded = encode_preferences(lm, DATA)
    with torch.no_grad():
        interventions = steerer.set_params(coefficient=coefficient).interventions()
        target, opposite = steered_answer_log_probs(lm, encoded.batch(range(len(DATA)), lm.tokenizer.pad_token_id),
                                                    interventions).view(2, -1)
    steerer.set_params(coefficient=1.0)
    return float((target - opposite).mean())


def test_plus_v_prefers_the_targets_and_minus_v_the_opposites(tiny_llama, fitted):
    unsteered = margin(tiny_llama, fitted, 0.0)
    assert margin(tiny_llama, fitted, 1.0) > unsteered + 1.0
    assert margin(tiny_llama, fitted, -1.0) < unsteered - 1.0
    assert len(fitted.history_.loss) == 6 and fitted.n_trainable_parameters_ == tiny_llama.hidden_size
    assert fitted.interventions()[0].site.layer == 2 and fitted.interventions()[0].positions == "all"


def test_the_same_seed_gives_the_same_vector_and_another_seed_another(tiny_llama, fitted):
    vector = fitted.interventions()[0].vector
    assert torch.equal(_fit(tiny_llama).interventions()[0].vector, vector)
    assert not torch.equal(_fit(tiny_llama, seed=1).interventions()[0].vector, vector)


def test_reference_log_probs_are_scored_once_per_example(tiny_llama, monkeypatch):
    scored = []

    def counting(lm, batch):
        scored.append(batch.input_ids.shape[0])
        return answer_log_probs(lm, batch)

    monkeypatch.setattr(preference_data_module, "answer_log_probs", counting)
    _fit(tiny_llama, epochs=2)
    assert sum(scored) == 2 * len(DATA)  # one target and one opposite row per example, for all epochs


def test_reference_log_probs_equal_each_answer_scored_alone(tiny_llama):
    encoded = encode_preferences(tiny_llama, DATA, batch_size=3)
    for i in range(len(DATA)):
        alone = answer_log_probs(tiny_llama, encoded.batch([i], tiny_llama.tokenizer.pad_token_id)).detach()
        assert alone.tolist() == pytest.approx([encoded.unsteered_targets[i].item(),
                                                encoded.unsteered_opposites[i].item()], abs=1e-4)


def test_fit_accepts_questions_and_an_n_by_2_answer_array(tiny_llama, fitted):
    answers = np.array([DATA.targets, DATA.opposites]).T
    steerer = BiPOSteerer(tiny_llama, layer=2, learning_rate=0.1, batch_size=2, epochs=3, progress=False)
    assert torch.equal(steerer.fit(list(DATA.questions), answers).interventions()[0].vector,
                       fitted.interventions()[0].vector)
    with pytest.raises(ValueError, match=r"y must be an \(n, 2\) array"):
        steerer.fit(list(DATA.questions), DATA.targets)
    with pytest.raises(ValueError, match="unbalanced"):
        steerer.fit(DATA.questions, np.array([DATA.targets, DATA.targets]).T)
    with pytest.raises(ValueError, match="no triple"):
        steerer.fit([], np.empty((0, 2)))
    with pytest.raises(ValueError, match="beta must be a positive"):
        BiPOSteerer(tiny_llama, beta=0.0, progress=False).fit(DATA)


def test_save_load_round_trip(tiny_llama, fitted, tmp_path):
    fitted.save(tmp_path / "bipo")
    loaded = BiPOSteerer.load(tmp_path / "bipo", tiny_llama, progress=False)
    assert torch.equal(loaded.interventions()[0].vector, fitted.interventions()[0].vector)
    assert loaded.get_params()["layer"] == 2 and loaded.beta == fitted.beta
    questions = list(DATA.questions[:2])
    assert loaded.set_params(coefficient=-1.0).generate(questions, max_new_tokens=4) == \
        fitted.set_params(coefficient=-1.0).generate(questions, max_new_tokens=4)
    fitted.set_params(coefficient=1.0)


def test_sklearn_clone_keeps_the_hyperparameters_and_drops_the_training(fitted):
    from sklearn.base import clone

    copy = clone(fitted)
    assert copy.get_params() == fitted.get_params() and not hasattr(copy, "interventions_")
