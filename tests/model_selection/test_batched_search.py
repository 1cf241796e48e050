"""Batched searches: several configurations answered in one per-row-steered generation."""

import numpy as np
import optuna
import pandas as pd
import pytest

from steerkit.model_selection import GridSearchSteer, OptunaSearchSteer, TPESearchSteer
from tests.model_selection.fakes import CALLS, QUESTIONS, FakeBatchable, FakeLM, FakeSteered, fake_judge, mean_utility

GRID = {"layer": [3, 5, 7, 9], "coefficient": [1.0, 2.0, 3.0]}
SPACE = {"layer": list(range(1, 15)), "coefficient": [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5]}


def judged(history: pd.DataFrame) -> int:
    return len(history.loc[history["state"] == "complete", ["layer", "coefficient"]].drop_duplicates())


def test_a_batched_grid_answers_each_batch_in_one_generation_with_equal_scores():
    lm = FakeLM()
    one = GridSearchSteer(FakeBatchable(lm), GRID, fake_judge, cv=3, progress=False).fit(None, QUESTIONS)
    assert len(lm.calls) == 12
    lm.calls.clear()
    batched = GridSearchSteer(FakeBatchable(lm), GRID, fake_judge, cv=3, n_batch=5, progress=False).fit(None, QUESTIONS)
    assert [len(call) for call in lm.calls] == [5 * 9, 5 * 9, 2 * 9]  # 12 configurations in batches of 5
    first = lm.calls[0]
    assert [shift for _, shift in first[::9]] == [(3, 1.0), (5, 1.0), (7, 1.0), (9, 1.0), (3, 2.0)]
    assert [q for q, _ in first[:9]] == QUESTIONS  # each configuration's rows are all the questions
    for column in ("mean_test_score", "split0_test_score", "split2_test_score", "std_test_score"):
        np.testing.assert_array_equal(batched.cv_results_[column], one.cv_results_[column])
    assert batched.best_params_ == {"coefficient": 2.0, "layer": 7}
    assert batched.best_score_ == pytest.approx(mean_utility(7, 2.0))


def test_estimators_without_interventions_are_judged_one_at_a_time():
    CALLS.clear()
    search = GridSearchSteer(FakeSteered(), GRID, fake_judge, n_batch=4, progress=False).fit(None, QUESTIONS)
    assert len(CALLS) == 12
    for _, row in pd.DataFrame(search.cv_results_).iterrows():
        assert row.mean_test_score == pytest.approx(mean_utility(row.param_layer, row.param_coefficient))


def test_configurations_with_other_generation_lengths_are_not_mixed_in_one_generation():
    lm = FakeLM()
    grid = {"layer": [5, 7], "max_new_tokens": [8, 16]}
    GridSearchSteer(FakeBatchable(lm, coefficient=2.0), grid, fake_judge, n_batch=4, progress=False).fit(None, QUESTIONS)
    assert len(lm.calls) == 4


def test_an_optuna_search_asks_a_batch_of_trials_at_once():
    lm = FakeLM()
    runs = [TPESearchSteer(FakeBatchable(lm), SPACE, fake_judge, n_trials=24, n_batch=4, random_state=3,
                           progress=False).fit(None, QUESTIONS) for _ in range(2)]
    assert runs[0].history_["score"].tolist() == runs[1].history_["score"].tolist()  # same seed, same result
    assert judged(runs[0].history_) == 24
    batches = lm.calls[: len(lm.calls) // 2]
    assert len(batches) < 12 and max(len(call) for call in batches) == 4 * len(QUESTIONS)
    assert runs[0].best_score_ >= 0.9 * mean_utility(7, 2.0)


def test_an_optuna_search_takes_any_sampler():
    runs = [OptunaSearchSteer(FakeBatchable(FakeLM()), SPACE, fake_judge, sampler=optuna.samplers.RandomSampler(seed=1),
                              n_trials=10, n_batch=3, progress=False).fit(None, QUESTIONS) for _ in range(2)]
    assert runs[0].history_[["layer", "coefficient"]].equals(runs[1].history_[["layer", "coefficient"]])
    assert judged(runs[0].history_) == 10
    other = OptunaSearchSteer(FakeBatchable(FakeLM()), SPACE, fake_judge, sampler=optuna.samplers.RandomSampler(seed=2),
                              n_trials=10, progress=False).fit(None, QUESTIONS)
    assert not runs[0].history_[["layer", "coefficient"]].equals(other.history_[["layer", "coefficient"]])


def test_a_pruned_batch_keeps_judging_the_trials_still_running():
    search = TPESearchSteer(FakeBatchable(FakeLM()), SPACE, fake_judge, n_trials=20, n_batch=4, random_state=1,
                            n_startup_trials=4, pruner=optuna.pruners.MedianPruner(n_startup_trials=4),
                            progress=False).fit(None, QUESTIONS)
    states = search.cv_results_["state"]
    assert "pruned" in states and states.count("complete") >= 4
    for row in pd.DataFrame(search.cv_results_).itertuples():
        if row.state == "complete":
            assert row.mean_test_score == pytest.approx(mean_utility(row.param_layer, row.param_coefficient))


@pytest.mark.parametrize("n_batch", [0, 2.5, True])
def test_a_bad_n_batch_is_one_line_naming_it(n_batch):
    with pytest.raises(ValueError, match=r"^n_batch must be a positive integer .*got"):
        GridSearchSteer(FakeSteered(), GRID, fake_judge, n_batch=n_batch, progress=False).fit(None, QUESTIONS)


def test_a_batched_grid_on_a_real_model_judges_the_same_answers_as_one_at_a_time(tiny_llama):
    from steerkit.activations import ActivationSet
    from steerkit.estimators import PVSteerer
    from steerkit.metrics import make_steer_scorer
    from steerkit.model_selection import EvaluationCache
    from steerkit.steering import SteeredModel

    rng = np.random.default_rng(0)
    activations = ActivationSet({"response_avg": rng.normal(size=(8, tiny_llama.n_blocks + 1, tiny_llama.hidden_size))},
                                y=[1, 0] * 4, question_ids=[0, 0, 1, 1, 2, 2, 3, 3], instruction_ids=[0] * 8,
                                contrast_ids=[0, 0, 1, 1, 2, 2, 3, 3], model_name=tiny_llama.name)
    judge = make_steer_scorer(lambda question, response: float(sum(map(ord, response)) % 101), name="text")
    grid = {"layer": [1, 2, 3], "steerer__coefficient": [0.0, 2.0, 8.0]}
    questions = ["What is a ship?", "Name a colour.", "How are you today, my friend?"]
    estimator = SteeredModel(tiny_llama, PVSteerer(), max_new_tokens=6, batch_size=8)
    caches = [EvaluationCache(), EvaluationCache()]
    one, batched = (GridSearchSteer(estimator, grid, judge, n_batch=n, cache=cache, progress=False).fit(activations, questions)
                    for n, cache in zip((1, 4), caches))
    np.testing.assert_array_equal(batched.cv_results_["mean_test_score"], one.cv_results_["mean_test_score"])
    answers = [{key: [row["response"] for row in rows.values()] for key, rows in cache.entries.items()} for cache in caches]
    assert answers[0] == answers[1]
    assert len({tuple(a) for a in answers[0].values()}) > 3  # the configurations steer differently
