import math
import pickle

import numpy as np
import pandas as pd
import pytest

from steerkit.metrics import RESPONSE_COLUMNS, SteerScorer, make_steer_scorer, utility


def test_utility_is_elementwise_mean_with_nan():
    concept = np.array([100.0, 40.0, np.nan, 10.0])
    coherence = np.array([80.0, np.nan, 50.0, 30.0])
    np.testing.assert_array_equal(utility(concept, coherence), [90.0, np.nan, np.nan, 20.0])
    series = utility(pd.Series(concept, index=list("abcd")), pd.Series(coherence, index=list("abcd")))
    assert isinstance(series, pd.Series) and list(series.index) == list("abcd")
    np.testing.assert_array_equal(series.to_numpy(), [90.0, np.nan, np.nan, 20.0])


def test_aggregate_drops_missing_rows():
    table = pd.DataFrame({"utility": [80.0, np.nan, 40.0]})
    assert SteerScorer.aggregate(table) == 60.0
    assert math.isnan(SteerScorer.aggregate(pd.DataFrame({"utility": [np.nan, np.nan]})))
    assert math.isnan(SteerScorer.aggregate(pd.DataFrame({"utility": []})))


def length_utility(question, response):
    return min(len(response), 100)


def split_scores(question, response):
    if not response:
        return {"concept": None, "coherence": 50.0}
    return {"concept": 100.0 * ("arr" in response.lower()), "coherence": 60.0}


def test_make_steer_scorer_with_float_and_dict_functions():
    table = make_steer_scorer(length_utility).score_responses(["q1", "q2"], ["abc", "x" * 200])
    assert tuple(table.columns) == RESPONSE_COLUMNS
    assert table["utility"].tolist() == [3.0, 100.0]
    assert table[["concept", "coherence"]].isna().all().all()

    scorer = make_steer_scorer(split_scores, name="pirate-words")
    table = scorer.score_responses(["q1", "q2", "q3"], ["Arr matey", "Hello", ""])
    assert table["concept"].tolist()[:2] == [100.0, 0.0] and math.isnan(table["concept"][2])
    assert table["utility"].tolist()[:2] == [80.0, 30.0] and math.isnan(table["utility"][2])
    assert all(table[c].dtype == float for c in ("concept", "coherence", "utility"))
    assert "pirate-words" in repr(scorer)


def test_make_steer_scorer_rejects_bad_returns():
    with pytest.raises(ValueError, match="extra keys"):
        make_steer_scorer(lambda q, r: {"fluency": 3}).score_responses(["q"], ["r"])
    with pytest.raises(TypeError, match="real number"):
        make_steer_scorer(lambda q, r: "high").score_responses(["q"], ["r"])
    with pytest.raises(TypeError, match="callable"):
        make_steer_scorer(42)


def test_explicit_utility_wins_and_none_is_missing():
    scorer = make_steer_scorer(lambda q, r: {"concept": 10.0, "coherence": 20.0, "utility": 99.0})
    assert scorer.score_responses(["q"], ["r"])["utility"].tolist() == [99.0]
    table = make_steer_scorer(lambda q, r: None).score_responses(["q"], ["r"])
    assert table.isna()[["concept", "coherence", "utility"]].all().all()


class CountingModel:
    """Any object with generate(list[str]) -> list[str] can be evaluated."""

    def __init__(self):
        self.calls = []

    def generate(self, questions):
        self.calls.append(questions)
        return [f"Arr, {q}" for q in questions]


def test_evaluate_generates_once_and_call_returns_mean_utility():
    model = CountingModel()
    scorer = make_steer_scorer(split_scores)
    table = scorer.evaluate(model, ("How?", "Why?"))
    assert model.calls == [["How?", "Why?"]]
    assert table["response"].tolist() == ["Arr, How?", "Arr, Why?"]
    assert table["question"].tolist() == ["How?", "Why?"]
    assert scorer(model, ["How?"]) == 80.0
    assert len(model.calls) == 2


def test_evaluate_checks_answer_count():
    class Broken:
        def generate(self, questions):
            return ["only one"]

    with pytest.raises(ValueError, match="returned 1 answers for 2 questions"):
        make_steer_scorer(length_utility).evaluate(Broken(), ["a", "b"])


def test_function_scorer_pickles():
    restored = pickle.loads(pickle.dumps(make_steer_scorer(length_utility)))
    assert restored.score_responses(["q"], ["abcd"])["utility"].tolist() == [4.0]


def test_scores_a_real_steered_model(tiny_llama):
    from steerkit.estimators import PVSteerer
    from steerkit.steering import SteeredModel

    steerer = PVSteerer(coefficient=2.0).fit(np.random.default_rng(0).normal(size=(6, 64)))
    model = SteeredModel(tiny_llama, steerer, layer=2, max_new_tokens=3)
    scorer = make_steer_scorer(lambda q, r: {"concept": 50.0, "coherence": 100.0 if r else None})
    table = scorer.evaluate(model, ["Hi?", "Why?"])
    assert len(table) == 2 and table["question"].tolist() == ["Hi?", "Why?"]
    assert scorer(model, ["Hi?", "Why?"]) == SteerScorer.aggregate(table)


def test_clone_shares_a_judge_so_a_fitted_judge_stays_fitted():
    from sklearn.base import clone

    from steerkit.metrics import make_steer_scorer

    judge = make_steer_scorer(lambda q, r: 1.0)
    assert clone(judge) is judge
