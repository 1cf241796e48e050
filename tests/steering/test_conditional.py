"""ConditionalSteering (CAST): the behaviour is applied exactly to the rows meeting the condition."""

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from steerkit.estimators import ConditionDetector
from steerkit.lm import generate
from steerkit.lm.interventions import AddVector
from steerkit.steering.conditional import ConditionalSteering

SEA = ["ship", "ocean", "sail", "harbor", "anchor", "waves", "sailor", "tide"]
KITCHEN = ["oven", "flour", "bake", "butter", "dough", "sugar", "kettle", "pan"]


def _questions(words, start, n):
    """``n`` questions built from ``words`` (repeated so the topic dominates the prompt)."""
    return [" ".join(words[(start + k) % len(words)] for k in range(i, i + 6)) + "?" for i in range(n)]


@pytest.fixture
def cast(tiny_llama):
    lm = tiny_llama
    train = [lm.chat_prompt(q) for q in _questions(SEA, 0, 8) + _questions(KITCHEN, 0, 8)]
    behaviour = AddVector(np.random.default_rng(0).normal(scale=4.0, size=lm.hidden_size), site=2)
    return ConditionalSteering(lm, 2, [behaviour]).fit(train, [1] * 8 + [0] * 8)


def test_condition_is_detected_on_held_out_prompts_with_precision_and_recall_one(cast, tiny_llama):
    held_out = [tiny_llama.chat_prompt(q) for q in _questions(SEA, 3, 5) + _questions(KITCHEN, 3, 5)]
    assert list(cast.applies(held_out)) == [True] * 5 + [False] * 5
    assert cast.detector_.roc_["tpr"][-1] == 1.0  # the training ROC is kept


def test_rows_get_exactly_the_unsteered_or_the_steered_answer(cast, tiny_llama):
    lm = tiny_llama
    prompts = [lm.chat_prompt(q) for q in [_questions(SEA, 5, 1)[0], _questions(KITCHEN, 5, 1)[0],
                                           _questions(KITCHEN, 2, 1)[0], _questions(SEA, 1, 1)[0]]]
    answers = cast.generate(prompts, max_new_tokens=10, batch_size=4)
    plain = generate(lm, prompts, max_new_tokens=10)
    steered = generate(lm, prompts, max_new_tokens=10, interventions=[cast.interventions] * 4)
    assert answers == [steered[0], plain[1], plain[2], steered[3]]
    assert steered[0] != plain[0] and steered[1] != plain[1]  # the behaviour does change answers


def test_a_fitted_detector_is_used_as_is(cast, tiny_llama):
    reused = ConditionalSteering(tiny_llama, 2, cast.interventions, detector=cast.detector_)
    assert reused.detector_ is cast.detector_
    with pytest.raises(ValueError, match="pooling must be one of"):
        ConditionalSteering(tiny_llama, 2, cast.interventions, pooling="response_avg")
    unfitted = ConditionalSteering(tiny_llama, 2, cast.interventions, detector=ConditionDetector())
    with pytest.raises(NotFittedError, match="not fitted"):
        unfitted.applies([tiny_llama.chat_prompt("ship?")])
