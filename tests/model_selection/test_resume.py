"""Interrupted, killed and concurrent searches: the budget counts distinct judged configurations."""

import fcntl
import subprocess
import sys
import threading
from pathlib import Path

import optuna
import pytest

from steerkit.metrics import make_steer_scorer
from steerkit.model_selection import TPESearchSteer
from tests.model_selection.fakes import CALLS, QUESTIONS, FakeSteered, fake_judge, true_utility

SPACE = {"layer": list(range(1, 12)), "coefficient": [1.0, 2.0, 3.0]}
ROOT = Path(__file__).resolve().parents[2]


def judged_configurations(storage: str, name: str = "s") -> list[tuple]:
    """(layer, coefficient) of every trial whose answers were judged in the study, repeats excluded."""
    study = optuna.load_study(study_name=name, storage=storage)
    return [(t.params["layer"], t.params["coefficient"]) for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
            if not t.user_attrs.get("repeat")]


def interrupting_judge(after: int):
    """``fake_judge`` (same name, same fingerprint) that raises KeyboardInterrupt (Ctrl-C) on the
    ``after + 1``-th configuration."""
    seen = set()

    def score(question, response):
        layer, coefficient, _ = response.split("|", 2)
        seen.add((layer, coefficient))
        if len(seen) > after:
            raise KeyboardInterrupt
        return true_utility(int(layer), float(coefficient), question)

    return make_steer_scorer(score, name="fake")


def search(judge, storage, n_trials=10):
    return TPESearchSteer(FakeSteered(), SPACE, judge, n_trials=n_trials, random_state=0, storage=storage,
                          study_name="s", progress=False)


def test_a_resumed_search_judges_its_budget_of_distinct_configurations(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    with pytest.raises(KeyboardInterrupt):
        search(interrupting_judge(after=4), storage).fit(None, QUESTIONS)
    before = judged_configurations(storage)
    assert len(before) == 4
    CALLS.clear()
    resumed = search(fake_judge, storage).fit(None, QUESTIONS)
    judged = judged_configurations(storage)
    assert len(judged) == len(set(judged)) == 10  # the failed trial does not count
    assert not {(layer, coefficient) for layer, coefficient, _ in CALLS} & set(before)  # nothing judged twice
    assert "failed" in resumed.history_["state"].tolist()
    fresh = resumed.history_.iloc[len(before) + 1:]
    assert not fresh["cached"].iloc[0]  # a re-seeded sampler: the resume does not replay the first picks


KILLED_RUN = """
import os, signal
from steerkit.metrics import make_steer_scorer
from steerkit.model_selection import TPESearchSteer
from tests.model_selection.fakes import FakeSteered, QUESTIONS, true_utility
seen = set()
def score(question, response):
    layer, coefficient, _ = response.split("|", 2)
    seen.add((layer, coefficient))
    if len(seen) > 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return true_utility(int(layer), float(coefficient), question)
TPESearchSteer(FakeSteered(), {space!r}, make_steer_scorer(score, name="fake"), n_trials=10, random_state=0, storage={storage!r},
               study_name="s", progress=False).fit(None, QUESTIONS)
"""


def test_a_trial_left_running_by_a_killed_run_is_failed_and_not_counted(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    killed = subprocess.run([sys.executable, "-c", KILLED_RUN.format(space=SPACE, storage=storage)], cwd=ROOT)
    assert killed.returncode == -9
    study = optuna.load_study(study_name="s", storage=storage)
    assert len(study.get_trials(states=(optuna.trial.TrialState.RUNNING,))) == 1
    search(fake_judge, storage).fit(None, QUESTIONS)  # the dead run's lock went with it
    study = optuna.load_study(study_name="s", storage=storage)
    assert not study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
    judged = judged_configurations(storage)
    assert len(judged) == len(set(judged)) == 10


def test_a_second_run_on_the_same_study_file_is_refused(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    started, release = threading.Event(), threading.Event()

    def slow_score(question, response):
        started.set()
        release.wait(30)
        return 50.0

    first = threading.Thread(target=lambda: search(make_steer_scorer(slow_score), storage, n_trials=1).fit(None, QUESTIONS))
    first.start()
    try:
        assert started.wait(30)
        with pytest.raises(ValueError, match=r"another steerkit process is using .*study\.db.*wait for it"):
            search(fake_judge, storage).fit(None, QUESTIONS)
    finally:
        release.set()
        first.join()
    with open(tmp_path / "study.db.lock") as handle:  # released when the first run ended
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_a_budget_beyond_the_space_stops_when_every_configuration_is_judged():
    CALLS.clear()
    with pytest.warns(UserWarning, match="all 2 configurations of the search space are judged"):
        result = TPESearchSteer(FakeSteered(), {"layer": [6, 7], "coefficient": [2.0]}, fake_judge,
                                n_trials=6, random_state=0, progress=False).fit(None, QUESTIONS)
    assert sorted(call[0] for call in CALLS) == [6, 7]
    assert result.best_params_ == {"layer": 7, "coefficient": 2.0}


def test_an_unusable_storage_is_one_clear_error_without_the_password(tmp_path):
    corrupt = tmp_path / "study.db"
    corrupt.write_text("not a database")
    with pytest.raises(ValueError, match=r"storage: cannot open the Optuna storage \(DatabaseError: file is not a database\)"):
        search(fake_judge, f"sqlite:///{corrupt}").fit(None, QUESTIONS)
    with pytest.raises(ValueError, match=r"storage: cannot open .*Connection refused") as refused:
        search(fake_judge, "postgresql+psycopg2://user:s3cret@127.0.0.1:1/db").fit(None, QUESTIONS)
    assert "s3cret" not in str(refused.value) and "\n" not in str(refused.value)
