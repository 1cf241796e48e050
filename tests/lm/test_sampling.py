"""Sampled generation: per-row temperature, top-p and seed, independent of batch-mates."""

import numpy as np
import pytest
import torch

from steerkit.lm import interventions as iv
from steerkit.lm.generation import generate, sample_token

QUESTIONS = ["Hi", "Tell me a long story about a dog who lived by the sea and loved it.", "What is a cloud?",
             "Name a colour."]
TEMPERATURES = [0.0, 1.0, 0.7, 1.3]
TOP_PS = [1.0, 1.0, 0.9, 0.5]
SEEDS = [None, 3, 4, 3]


def _prompts(lm):
    return [lm.chat_prompt(q) for q in QUESTIONS]


def test_a_row_samples_what_it_samples_alone_in_a_mixed_left_padded_batch(tiny_llama):
    prompts = _prompts(tiny_llama)
    batched = generate(tiny_llama, prompts, max_new_tokens=8, batch_size=4,
                       temperature=TEMPERATURES, top_p=TOP_PS, seed=SEEDS)
    alone = [generate(tiny_llama, [p], max_new_tokens=8, temperature=t, top_p=q, seed=s)[0]
             for p, t, q, s in zip(prompts, TEMPERATURES, TOP_PS, SEEDS)]
    assert batched == alone
    assert batched[0] == generate(tiny_llama, prompts[:1], max_new_tokens=8)[0]  # greedy row untouched


def test_sampling_follows_the_seed_and_differs_from_greedy(tiny_llama):
    prompt = _prompts(tiny_llama)[2]
    greedy = generate(tiny_llama, [prompt] * 3, max_new_tokens=8)
    sampled = generate(tiny_llama, [prompt] * 3, max_new_tokens=8, temperature=1.0, seed=[7, 7, 8])
    assert sampled[0] == sampled[1] != sampled[2]
    assert sampled[0] != greedy[0]


def test_per_row_interventions_and_sampling_match_each_row_alone(tiny_llama):
    prompts = _prompts(tiny_llama)[:3]
    vector = np.random.default_rng(0).normal(size=tiny_llama.hidden_size).astype(np.float32)
    steering = [iv.AddVector(vector, site=2, coefficient=4.0)]
    rows = [steering, None, steering]
    temperatures, seeds = [1.0, 1.0, 0.0], [5, 6, None]
    batched = generate(tiny_llama, prompts, max_new_tokens=6, interventions=rows, temperature=temperatures, seed=seeds)
    alone = [generate(tiny_llama, [p], max_new_tokens=6, interventions=[r], temperature=t, seed=s)[0]
             for p, r, t, s in zip(prompts, rows, temperatures, seeds)]
    assert batched == alone


def test_sampling_leaves_the_global_random_state_alone(tiny_llama):
    state = torch.get_rng_state()
    generate(tiny_llama, _prompts(tiny_llama)[:1], max_new_tokens=3, temperature=1.0, seed=1)
    assert torch.equal(torch.get_rng_state(), state)


def test_sample_token_draws_from_the_tempered_nucleus():
    probabilities = torch.tensor([0.1, 0.5, 0.15, 0.25])
    logits = probabilities.log()
    generator = torch.Generator().manual_seed(0)
    n = 4000

    def frequencies(temperature, top_p):
        draws = [sample_token(logits, temperature, top_p, generator) for _ in range(n)]
        return np.bincount(draws, minlength=4) / n

    np.testing.assert_allclose(frequencies(1.0, 1.0), probabilities.numpy(), atol=0.03)
    # top_p = 0.7: the nucleus is {1, 3} (0.5 + 0.25 >= 0.7), renormalised to 2/3 and 1/3
    np.testing.assert_allclose(frequencies(1.0, 0.7), [0, 2 / 3, 0, 1 / 3], atol=0.03)
    tempered = probabilities.numpy() ** 2 / (probabilities.numpy() ** 2).sum()  # temperature 0.5
    np.testing.assert_allclose(frequencies(0.5, 1.0), tempered, atol=0.03)
    assert set(frequencies(1.0, 0.3).nonzero()[0]) == {1}


@pytest.mark.parametrize("option, value, fragment", [
    ("temperature", -0.5, "temperature must be a finite number >= 0"),
    ("temperature", float("nan"), "temperature must be a finite number >= 0"),
    ("top_p", 0.0, "top_p must be a number in (0, 1]"),
    ("top_p", 1.5, "top_p must be a number in (0, 1]"),
    ("seed", 1.5, "seed must be a non-negative integer"),
    ("seed", "7", "seed must be a non-negative integer"),
    ("temperature", [1.0, 1.0], "temperature has 2 entries but there are 1 prompts"),
])
def test_bad_sampling_settings_are_one_line_errors(tiny_llama, option, value, fragment):
    with pytest.raises(ValueError) as error:
        generate(tiny_llama, _prompts(tiny_llama)[:1], max_new_tokens=2, **{option: value})
    assert fragment in str(error.value) and "\n" not in str(error.value)
