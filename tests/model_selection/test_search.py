import json

import numpy as np
import optuna
import pandas as pd
import pytest

from steerkit.model_selection import (
    EvaluationCache,
    GridSearchSteer,
    QuestionKFold,
    TPESearchSteer,
    cross_val_steer,
    search_efficiency,
    trials_to_fraction,
)
from tests.model_selection.fakes import CALLS, QUESTIONS, FakeSteered, fake_judge, mean_utility, true_utility

GRID = {"layer": [3, 5, 7, 9], "coefficient": [1.0, 2.0, 3.0]}


def n_judged(history: pd.DataFrame) -> int:
    """Distinct configurations with a complete trial (the TPE budget)."""
    return len(history.loc[history["state"] == "complete", ["layer", "coefficient"]].drop_duplicates())


def test_grid_scores_every_config_like_an_independent_loop():
    search = GridSearchSteer(FakeSteered(), GRID, fake_judge, progress=False).fit(None, QUESTIONS)
    results = pd.DataFrame(search.cv_results_)
    assert len(results) == 12
    for _, row in results.iterrows():
        assert row.mean_test_score == pytest.approx(mean_utility(row.param_layer, row.param_coefficient))
    assert search.best_params_ == {"coefficient": 2.0, "layer": 7}
    assert search.best_score_ == pytest.approx(mean_utility(7, 2.0))
    assert results.loc[search.best_index_, "rank_test_score"] == 1
    assert search.best_estimator_.layer == 7 and search.best_estimator_.fitted_
    assert search.history_["best_so_far"].is_monotonic_increasing


def test_question_folds_give_per_split_scores():
    search = GridSearchSteer(FakeSteered(), GRID, fake_judge, cv=3, progress=False).fit(None, QUESTIONS)
    results = search.cv_results_
    folds = list(QuestionKFold(3).split(QUESTIONS))
    for k, (_, test) in enumerate(folds):
        held_out = [QUESTIONS[i] for i in test]
        expected = [mean_utility(p["layer"], p["coefficient"], held_out) for p in results["params"]]
        np.testing.assert_allclose(results[f"split{k}_test_score"], expected)
    np.testing.assert_allclose(results["mean_test_score"], np.mean([results[f"split{k}_test_score"] for k in range(3)], axis=0))
    assert search.n_splits_ == 3


def test_layers_argument_restricts_the_search():
    search = GridSearchSteer(FakeSteered(), GRID, fake_judge, layers=[3, 9], progress=False).fit(None, QUESTIONS)
    assert set(search.cv_results_["param_layer"]) == {3, 9}


def test_shared_cache_means_no_answer_is_generated_twice():
    cache = EvaluationCache()
    CALLS.clear()
    GridSearchSteer(FakeSteered(), GRID, fake_judge, cache=cache, progress=False).fit(None, QUESTIONS[:5])
    assert len(CALLS) == 12 and len(cache) == 60
    CALLS.clear()
    search = GridSearchSteer(FakeSteered(), GRID, fake_judge, cache=cache, progress=False).fit(None, QUESTIONS)
    assert len(CALLS) == 12 and all(len(call[2]) == 4 for call in CALLS)  # only the 4 new questions
    assert not any(search.cv_results_["cached"])


def test_cache_round_trips_through_json(tmp_path):
    cache = EvaluationCache()
    GridSearchSteer(FakeSteered(), GRID, fake_judge, cache=cache, progress=False).fit(None, QUESTIONS[:2])
    cache.save(tmp_path / "cache.json")
    loaded = EvaluationCache.load(tmp_path / "cache.json")
    assert json.dumps(loaded.entries, sort_keys=True) == json.dumps(cache.entries, sort_keys=True)  # NaN-safe


def test_tpe_finds_the_peak_and_is_reproducible():
    space = {"layer": list(range(1, 15)), "coefficient": [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5]}
    runs = [TPESearchSteer(FakeSteered(), space, fake_judge, n_trials=40, random_state=3, progress=False).fit(None, QUESTIONS)
            for _ in range(2)]
    assert runs[0].history_["score"].tolist() == runs[1].history_["score"].tolist()
    assert runs[0].best_params_ == runs[1].best_params_
    assert runs[0].best_score_ >= 0.95 * mean_utility(7, 2.0)
    assert n_judged(runs[0].history_) == 40  # the budget counts distinct configurations


def test_tpe_repeated_configs_are_cached_not_regenerated():
    CALLS.clear()
    search = TPESearchSteer(FakeSteered(), {"layer": list(range(5, 10)), "coefficient": [2.0]}, fake_judge,
                            n_trials=4, random_state=0, n_startup_trials=1, progress=False).fit(None, QUESTIONS)
    assert len(CALLS) == 4  # four distinct configurations
    repeats = len(search.history_) - 4
    assert repeats > 0 and sum(search.cv_results_["cached"]) == repeats


def test_tpe_resumes_a_crashed_study_from_storage(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    space = {"layer": list(range(1, 12)), "coefficient": [1.0, 2.0, 3.0]}

    class Crash(Exception):
        pass

    crashing = make_crashing_judge(after=5, error=Crash)  # the same judge (name "fake"), crashing
    with pytest.raises(Crash):
        TPESearchSteer(FakeSteered(), space, crashing, n_trials=12, random_state=0, storage=storage,
                       study_name="s", progress=False).fit(None, QUESTIONS)
    done = optuna.load_study(study_name="s", storage=storage).get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    done_before = len({(t.params["layer"], t.params["coefficient"]) for t in done})
    assert done_before == 5
    CALLS.clear()
    search = TPESearchSteer(FakeSteered(), space, fake_judge, n_trials=12, random_state=0, storage=storage,
                            study_name="s", progress=False).fit(None, QUESTIONS)
    assert n_judged(search.history_) == 12  # the finished trials are kept, only the rest run
    assert len(CALLS) == 12 - done_before


def make_crashing_judge(after, error):
    from steerkit.metrics import make_steer_scorer

    seen = []

    def score(question, response):
        seen.append(response.split("|", 2)[:2])
        if len({tuple(s) for s in seen}) > after:
            raise error("simulated crash")
        layer, coefficient, _ = response.split("|", 2)
        return true_utility(int(layer), float(coefficient), question)

    return make_steer_scorer(score, name="fake")


def test_pruner_stops_bad_trials_early():
    space = {"layer": list(range(1, 15)), "coefficient": [0.5, 2.0, 4.5]}
    CALLS.clear()
    search = TPESearchSteer(FakeSteered(), space, fake_judge, n_trials=30, random_state=1, n_startup_trials=5,
                            pruner=optuna.pruners.MedianPruner(n_startup_trials=5), pruning_steps=3,
                            progress=False).fit(None, QUESTIONS)
    states = search.cv_results_["state"]
    assert "pruned" in states
    pruned = [i for i, s in enumerate(states) if s == "pruned"]
    assert all(np.isnan(search.cv_results_["mean_test_score"][i]) for i in pruned)
    assert search.best_score_ >= 0.9 * mean_utility(7, 2.0)


def test_tpe_parallel_workers_share_one_study():
    space = {"layer": list(range(1, 10)), "coefficient": [1.0, 2.0]}
    search = TPESearchSteer(FakeSteered(), space, fake_judge, n_trials=8, random_state=0, n_jobs=2,
                            progress=False).fit(None, QUESTIONS)
    assert n_judged(search.history_) == 8
    assert search.best_score_ == pytest.approx(max(mean_utility(p["layer"], p["coefficient"]) for p in search.cv_results_["params"]))


def test_grid_parallel_matches_sequential():
    a = GridSearchSteer(FakeSteered(), GRID, fake_judge, progress=False).fit(None, QUESTIONS)
    b = GridSearchSteer(FakeSteered(), GRID, fake_judge, n_jobs=2, progress=False).fit(None, QUESTIONS)
    np.testing.assert_allclose(a.cv_results_["mean_test_score"], b.cv_results_["mean_test_score"])


def test_nested_cross_validation_scores_choice_on_held_out_questions():
    search = GridSearchSteer(FakeSteered(), GRID, fake_judge, progress=False)
    folds = cross_val_steer(search, None, QUESTIONS, cv=3)
    assert len(folds) == 3
    for (_, test), row in zip(QuestionKFold(3).split(QUESTIONS), folds.itertuples()):
        held_out = [QUESTIONS[i] for i in test]
        assert row.test_score == pytest.approx(mean_utility(row.best_params["layer"], row.best_params["coefficient"], held_out))
    plain = cross_val_steer(FakeSteered(layer=7, coefficient=2.0), None, QUESTIONS, fake_judge, cv=3)
    assert plain.attrs["mean_test_score"] == pytest.approx(mean_utility(7, 2.0), rel=1e-9)


def test_trials_to_fraction_matches_the_paper_definition():
    scores = [10, 50, 40, 94, 80, 100]
    assert trials_to_fraction(scores, 0.95) == 6
    assert trials_to_fraction(scores, 0.9) == 4
    assert trials_to_fraction([np.nan, 5, 5], 0.95) == 2
    assert trials_to_fraction([np.nan]) is None
    frame = search_efficiency([[1, 2, 3], [3, 3, 3]])
    assert frame["trials_to_target"].tolist() == [3, 1]
    with pytest.raises(ValueError, match="fraction"):
        trials_to_fraction(scores, 0)


def test_bad_inputs_are_explained():
    with pytest.raises(TypeError, match="scoring must be a steerkit judge"):
        GridSearchSteer(FakeSteered(), GRID, lambda m, q: 1.0).fit(None, QUESTIONS)
    with pytest.raises(ValueError, match="at least one evaluation question"):
        GridSearchSteer(FakeSteered(), GRID, fake_judge).fit(None, [])
    with pytest.raises(ValueError, match="cannot split 2 distinct questions into 3 folds"):
        GridSearchSteer(FakeSteered(), GRID, fake_judge, cv=3).fit(None, QUESTIONS[:2])
    with pytest.raises(TypeError, match="must be a list or an optuna distribution"):
        TPESearchSteer(FakeSteered(), {"layer": 3}, fake_judge, n_trials=1, progress=False).fit(None, QUESTIONS)


def test_tpe_evaluates_initial_params_first_and_only_in_a_new_study(tmp_path):
    space = {"layer": list(range(1, 12)), "coefficient": [1.0, 2.0, 3.0]}
    start = [{"layer": 7, "coefficient": 2.0}, {"layer": 3, "coefficient": 1.0}]
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    search = TPESearchSteer(FakeSteered(), space, fake_judge, n_trials=4, random_state=0, initial_params=start,
                            storage=storage, study_name="s", progress=False).fit(None, QUESTIONS)
    assert search.history_[["layer", "coefficient"]].head(2).to_dict("records") == start
    assert search.history_["score"].iloc[0] == pytest.approx(mean_utility(7, 2.0))
    resumed = TPESearchSteer(FakeSteered(), space, fake_judge, n_trials=8, random_state=0, initial_params=start,
                             storage=storage, study_name="s", progress=False).fit(None, QUESTIONS)
    assert n_judged(resumed.history_) == 8
    assert resumed.history_[["layer", "coefficient"]].iloc[4:].to_dict("records") != start  # not queued again


def test_tpe_initial_params_outside_the_space_are_explained():
    space = {"layer": [1, 2], "coefficient": [1.0, 2.0]}
    with pytest.raises(ValueError, match=r"layer=9 is not one of the choices \[1, 2\]"):
        TPESearchSteer(FakeSteered(), space, fake_judge, n_trials=2, initial_params=[{"layer": 9, "coefficient": 1.0}],
                       progress=False).fit(None, QUESTIONS)
    with pytest.raises(ValueError, match=r"names \['steerer__coefficient'\], which are not searched"):
        TPESearchSteer(FakeSteered(), space, fake_judge, n_trials=2,
                       initial_params=[{"steerer__coefficient": 1.0}], progress=False).fit(None, QUESTIONS)
