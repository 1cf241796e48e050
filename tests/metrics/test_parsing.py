import math

import numpy as np
import pytest

from steerkit.metrics.parsing import integer_value, parse_score, score_from_top_logprobs, weighted_scores


@pytest.mark.parametrize("text, expected", [
    ("Score: 85/100", 85.0),
    ("85", 85.0),
    (" 7.5 out of 100", 7.5),
    ("150", 100.0),
    ("I would say 0.", 0.0),
    ("85 - this is not a REFUSAL", 85.0),
])
def test_parse_score_reads_the_first_number(text, expected):
    assert parse_score(text) == expected


@pytest.mark.parametrize("text", ["REFUSAL", "refusal: 40", "none", "", "N/A"])
def test_parse_score_missing(text):
    assert math.isnan(parse_score(text))


def test_integer_value():
    assert [integer_value(t) for t in ["85", " 100", "\n0", "05", "101", "8a", "¹", ""]] == [
        85, 100, 0, None, None, None, None, None]


def test_weighted_scores_on_a_synthetic_distribution():
    values = np.array([0.0, 50.0, 100.0])
    probabilities = np.array([
        [0.1, 0.2, 0.5],    # mass 0.8: (0 + 10 + 50) / 0.8 = 75
        [0.0, 0.1, 0.1],    # mass 0.2 < 0.25: missing
        [0.0, 0.3, 0.0],    # all on 50
        [0.0, 0.0, 0.0],    # no mass at all
    ])
    scores = weighted_scores(probabilities, values, min_mass=0.25)
    np.testing.assert_allclose(scores[[0, 2]], [75.0, 50.0])
    assert np.isnan(scores[[1, 3]]).all()
    assert weighted_scores(probabilities[1], values, min_mass=0.1)[0] == pytest.approx(75.0)


def test_score_from_top_logprobs_ignores_non_score_tokens():
    top = {"90": math.log(0.5), " 80": math.log(0.25), "REF": math.log(0.2), "999": math.log(0.05)}
    assert score_from_top_logprobs(top) == pytest.approx((0.5 * 90 + 0.25 * 80) / 0.75)
    assert math.isnan(score_from_top_logprobs({"REF": 0.0}))
    assert math.isnan(score_from_top_logprobs({"90": math.log(0.1), "x": math.log(0.9)}))
