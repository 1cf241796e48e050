"""A search never hands out answers or trials fitted on other data, questions, judges or settings."""

from dataclasses import replace

import numpy as np
import optuna
import pytest

from steerkit.activations import ActivationSet
from steerkit.metrics import make_steer_scorer
from steerkit.model_selection import EvaluationCache, GridSearchSteer, TPESearchSteer
from tests.model_selection.fakes import CALLS, QUESTIONS, FakeSteered, fake_judge, mean_utility

GRID = {"layer": [3, 5, 7, 9], "coefficient": [1.0, 2.0, 3.0]}


def tiny_activations(seed: int = 0, model_name: str = "tiny") -> ActivationSet:
    """4 samples (2 contrasts), 3 layers, d = 5."""
    rng = np.random.default_rng(seed)
    return ActivationSet({"response_avg": rng.normal(size=(4, 3, 5))}, y=[1, 0, 1, 0], question_ids=[0, 0, 1, 1],
                         instruction_ids=[0, 0, 0, 0], contrast_ids=[0, 0, 1, 1], model_name=model_name)


def test_activation_set_fingerprint_follows_the_content():
    base = tiny_activations(0)
    assert base.fingerprint() == tiny_activations(0).fingerprint()  # another object, same content
    changed = tiny_activations(0)
    changed.activations["response_avg"][0, 0, 0] += 1e-3
    relabelled = tiny_activations(0)
    relabelled.contrast_ids = np.array([0, 0, 2, 2])
    others = [changed, relabelled, tiny_activations(1), tiny_activations(0, model_name="other")]
    assert len({base.fingerprint(), *(a.fingerprint() for a in others)}) == 5


def test_shared_cache_does_not_answer_for_other_activations():
    cache = EvaluationCache()
    GridSearchSteer(FakeSteered(), GRID, fake_judge, cache=cache, progress=False).fit(tiny_activations(0), QUESTIONS[:3])
    CALLS.clear()
    GridSearchSteer(FakeSteered(), GRID, fake_judge, cache=cache, progress=False).fit(tiny_activations(1), QUESTIONS[:3])
    assert len(CALLS) == 12  # fitted on other data: every configuration answers again
    CALLS.clear()
    GridSearchSteer(FakeSteered(), GRID, fake_judge, cache=cache, progress=False).fit(tiny_activations(0), QUESTIONS[:3])
    assert CALLS == []  # same content (another object): the cache still answers


def test_shared_cache_does_not_answer_for_another_judge():
    cache = EvaluationCache()
    GridSearchSteer(FakeSteered(), GRID, fake_judge, cache=cache, progress=False).fit(None, QUESTIONS[:3])
    constant = make_steer_scorer(lambda question, response: 50.0, name="constant")
    search = GridSearchSteer(FakeSteered(), GRID, constant, cache=cache, progress=False).fit(None, QUESTIONS[:3])
    assert search.best_score_ == 50.0


def test_a_named_study_refuses_other_activations_questions_or_settings(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    space = {"layer": [3, 5, 7, 9]}

    def search(estimator=None, activations=tiny_activations(0), questions=QUESTIONS):
        return TPESearchSteer(estimator or FakeSteered(coefficient=2.0), space, fake_judge, n_trials=3, random_state=0,
                              storage=storage, study_name="s", progress=False).fit(activations, questions)

    search()
    with pytest.raises(ValueError, match=r"study 's' was created for other activations; .*new study_name"):
        search(activations=tiny_activations(1))
    with pytest.raises(ValueError, match=r"study 's' was created for other questions"):
        search(questions=QUESTIONS[:4])
    with pytest.raises(ValueError, match=r"study 's' was created for other estimator settings"):
        search(estimator=FakeSteered(coefficient=3.0))
    assert len(search().history_) == 3  # the same data, questions and settings resume it


def test_an_unnamed_study_starts_afresh_when_a_setting_changes(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    space = {"layer": [3, 5, 7, 9]}
    for coefficient in (1.0, 2.0):
        CALLS.clear()
        search = TPESearchSteer(FakeSteered(coefficient=coefficient), space, fake_judge, n_trials=3, random_state=0,
                                storage=storage, progress=False).fit(None, QUESTIONS)
        assert len(CALLS) == 3 and {call[1] for call in CALLS} == {coefficient}
        for row in search.history_.itertuples():
            assert row.score == pytest.approx(mean_utility(row.layer, coefficient))
    assert len(optuna.get_all_study_names(storage)) == 2


@pytest.mark.filterwarnings("ignore::UserWarning")  # random weights: the judge filter keeps few answers
def test_a_rerun_with_another_max_new_tokens_searches_again(tmp_path, tiny_llama):
    from steerkit.concepts import load_concept
    from steerkit.workflow import RunSettings, run_concept

    settings = RunSettings(n_questions=3, max_new_tokens=6, budget=3, n_search_questions=2, n_held_out=2, batch_size=8)
    run_concept(tiny_llama, load_concept("pirate"), tmp_path, settings, progress=False)
    run_concept(tiny_llama, load_concept("pirate"), tmp_path, replace(settings, max_new_tokens=5), progress=False)
    storage = f"sqlite:///{tmp_path / 'pirate' / 'study.db'}"
    studies = [optuna.load_study(study_name=name, storage=storage) for name in optuna.get_all_study_names(storage)]
    assert len(studies) == 2  # the changed setting got its own study and its own trials
    for study in studies:
        assert len({t.user_attrs["key"] for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))}) == 3
