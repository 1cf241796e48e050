"""Change rate with its Wilson interval, the labellers, and the steered/unsteered comparison."""

import math

import numpy as np
import pytest

from steerkit.lm.interventions import AddVector
from steerkit.metrics import JudgeLabeller, KeywordLabeller, change_rate, make_steer_scorer, steering_change_rate

Z95 = 1.959963984540054


def _wilson(k, n, z=Z95):
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


@pytest.mark.parametrize("after, k", [(["a", "c", "a", "b", "x"], 2), (["a", "b", "a", "a", "x"], 0),
                                      (["b", "a", "b", "b", "y"], 5)])
def test_change_rate_is_the_changed_share_with_a_wilson_interval(after, k):
    result = change_rate(["a", "b", "a", "a", "x"], after)
    assert (result.rate, result.n_changed, result.n) == (k / 5, k, 5)
    np.testing.assert_allclose((result.low, result.high), _wilson(k, 5), atol=1e-12)
    assert 0 <= result.low <= result.rate <= result.high <= 1


def test_a_wider_confidence_gives_a_wider_interval():
    narrow, wide = change_rate([0] * 20, [0] * 12 + [1] * 8, confidence=0.8), change_rate([0] * 20, [0] * 12 + [1] * 8)
    assert wide.low < narrow.low < narrow.high < wide.high


@pytest.mark.parametrize("before, after, fragment", [([1, 2], [1], "labels_before has 2 labels and labels_after 1"),
                                                     ([], [], "labels_before has 0 labels")])
def test_label_lists_must_pair_up(before, after, fragment):
    with pytest.raises(ValueError, match=fragment):
        change_rate(before, after)


def test_keyword_labeller_matches_whole_words_ignoring_case():
    label = KeywordLabeller(["ahoy", "me hearty"])
    assert label("AHOY there!") and label("Drink up, me hearty.")
    assert not label("Ahoyed nobody") and not label("hello")
    assert not KeywordLabeller(["ahoy"], case_sensitive=True)("AHOY")
    with pytest.raises(ValueError, match="keywords must be a non-empty list"):
        KeywordLabeller([])


def test_judge_labeller_thresholds_the_judges_score():
    judge = make_steer_scorer(lambda q, r: {"concept": 100.0 * ("arr" in r), "coherence": None})
    labeller = JudgeLabeller(judge, threshold=50)
    assert labeller.labels(["q", "q"], ["arr", "hello"]) == [True, False]
    assert JudgeLabeller(judge, score="coherence").labels(["q"], ["arr"]) == [False]  # NaN is not a pass


def test_steering_change_rate_compares_each_answer_with_its_unsteered_self(tiny_llama):
    questions = ["What is a cloud?", "Hi", "Tell me a story about the sea.", "Name a colour."]
    vector = np.random.default_rng(0).normal(size=tiny_llama.hidden_size).astype(np.float32)
    steering = [AddVector(vector, site=1, coefficient=6.0)]
    before = tiny_llama.generate(questions, max_new_tokens=6)
    after = tiny_llama.generate(questions, max_new_tokens=6, interventions=[steering] * 4)
    expected = sum(a != b for a, b in zip(before, after))
    result = steering_change_rate(tiny_llama, questions, steering, lambda text: text, max_new_tokens=6)
    assert expected > 0 and result.n_changed == expected and result.n == 4
    unchanged = steering_change_rate(tiny_llama, questions, [AddVector(vector, site=1, coefficient=0.0)], len,
                                     max_new_tokens=6)
    assert unchanged.rate == 0.0


def test_a_labeller_that_is_not_callable_is_refused_before_generating(tiny_llama):
    with pytest.raises(ValueError, match="labeller must be a callable text -> label"):
        steering_change_rate(tiny_llama, ["Hi"], [], {"ahoy"})
