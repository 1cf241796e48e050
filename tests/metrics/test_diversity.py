"""Sampling diversity: distinct answers / samples, seeded per sample."""

import numpy as np
import pytest

from steerkit.lm.interventions import AddVector
from steerkit.metrics import sampling_diversity

QUESTIONS = ["What is a cloud?", "Hi", "Tell me a story about the sea."]


def test_near_greedy_sampling_has_one_distinct_answer_and_hot_sampling_all_distinct(tiny_llama):
    cold = sampling_diversity(tiny_llama, QUESTIONS, n_samples=4, temperature=1.0, top_p=1e-6, max_new_tokens=5)
    hot = sampling_diversity(tiny_llama, QUESTIONS, n_samples=4, temperature=1.0, max_new_tokens=5)
    np.testing.assert_array_equal(cold, 0.25)  # the nucleus is the top token: the greedy answer 4 times
    np.testing.assert_array_equal(hot, 1.0)  # a random model over 49k tokens never repeats 5 tokens


def test_diversity_counts_the_samples_each_seed_gives_alone(tiny_llama):
    vector = np.random.default_rng(0).normal(size=tiny_llama.hidden_size).astype(np.float32)
    steering = [AddVector(vector, site=2, coefficient=3.0)]
    kwargs = dict(temperature=0.015, top_p=0.99, max_new_tokens=4)  # between 1/5 and 1
    diversity = sampling_diversity(tiny_llama, QUESTIONS, n_samples=5, seed=10, interventions=steering, batch_size=4,
                                   **kwargs)
    assert ((diversity > 0.2) & (diversity < 1)).any()
    for question, value in zip(QUESTIONS, diversity):
        alone = {tiny_llama.generate([question], seed=10 + i, interventions=[steering], **kwargs)[0] for i in range(5)}
        assert value == len(alone) / 5
    again = sampling_diversity(tiny_llama, QUESTIONS[::-1], n_samples=5, seed=10, interventions=steering, **kwargs)
    np.testing.assert_array_equal(again[::-1], diversity)


@pytest.mark.parametrize("option, value, fragment", [("n_samples", 0, "n_samples must be a positive integer"),
                                                     ("seed", -1, "seed must be a non-negative integer")])
def test_bad_settings_are_refused(tiny_llama, option, value, fragment):
    settings = {"n_samples": 2, "temperature": 1.0, option: value}
    with pytest.raises(ValueError, match=fragment):
        sampling_diversity(tiny_llama, QUESTIONS, **settings)
