"""KL in bits between unsteered and steered next-token distributions, against scipy."""

import numpy as np
import pytest
import torch
from scipy.stats import entropy

from steerkit.lm import intervene
from steerkit.lm.interventions import AddVector
from steerkit.metrics import steering_kl_bits

QUESTIONS = ["What is a cloud?", "Tell me a long story about a dog who lived by the sea.", "Hi"]
ANSWERS = ["A cloud is water in the sky.", "Once upon a time there was a dog", ""]


def _vector(lm, seed=0):
    return np.random.default_rng(seed).normal(size=lm.hidden_size).astype(np.float32)


def _independent_kl_bits(lm, question, answer, vector, positions):
    """Two separate unpadded forward passes and scipy's entropy in base 2."""
    prompt = lm.tokenizer(lm.chat_prompt(question), add_special_tokens=lm.adds_special_tokens)["input_ids"]
    answer_ids = lm.tokenizer(answer, add_special_tokens=False)["input_ids"] if answer else []
    ids = torch.tensor([prompt + answer_ids])
    steered_positions = torch.zeros(ids.shape, dtype=torch.bool)
    steered_positions[0, len(prompt) - 1 if positions == "response" else 0:] = True
    with torch.inference_mode():
        base = torch.softmax(lm.model(ids).logits[0].double(), -1).numpy()
        with intervene(lm, [AddVector(vector, site=2, coefficient=4.0, positions=steered_positions)]):
            steered = torch.softmax(lm.model(ids).logits[0].double(), -1).numpy()
    response = range(len(prompt) - 1, ids.shape[1])
    return np.mean([entropy(base[p], steered[p], base=2) for p in response])


@pytest.mark.parametrize("positions", ["response", "all"])
def test_kl_bits_match_two_separate_passes_and_scipy(tiny_llama, positions):
    v = _vector(tiny_llama)
    steering = [AddVector(v, site=2, coefficient=4.0, positions=positions)]
    kl = steering_kl_bits(tiny_llama, QUESTIONS, steering, answers=ANSWERS, batch_size=3)
    expected = [_independent_kl_bits(tiny_llama, q, a, v, positions) for q, a in zip(QUESTIONS, ANSWERS)]
    assert kl.shape == (3,) and (kl > 1e-3).all()
    np.testing.assert_allclose(kl, expected, rtol=1e-3, atol=1e-5)


def test_kl_bits_do_not_depend_on_batching_and_generate_the_unsteered_answers(tiny_llama):
    steering = [AddVector(_vector(tiny_llama, 1), site=1, coefficient=3.0)]
    answers = tiny_llama.generate(QUESTIONS, max_new_tokens=5)
    given = steering_kl_bits(tiny_llama, QUESTIONS, steering, answers=answers, batch_size=1)
    generated = steering_kl_bits(tiny_llama, QUESTIONS, steering, max_new_tokens=5, batch_size=3)
    np.testing.assert_allclose(generated, given, rtol=1e-4)


def test_zero_steering_is_zero_bits(tiny_llama):
    steering = [AddVector(_vector(tiny_llama), site=2, coefficient=0.0, positions="all")]
    np.testing.assert_allclose(steering_kl_bits(tiny_llama, QUESTIONS, steering, answers=ANSWERS), 0.0, atol=1e-6)


def test_one_answer_per_question_is_required(tiny_llama):
    with pytest.raises(ValueError, match="answers has 1 entries but there are 3 questions"):
        steering_kl_bits(tiny_llama, QUESTIONS, [], answers=["x"])
