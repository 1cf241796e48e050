"""Scaling out: worker processes sharing one study on a real PostgreSQL server; joblib's Dask backend."""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna
import pytest

from steerkit.metrics import make_steer_scorer
from steerkit.model_selection import GridSearchSteer
from tests.model_selection.fakes import QUESTIONS, FakeSteered, fake_judge, true_utility

ROOT = Path(__file__).resolve().parents[2]


def _postgres_bin() -> Path | None:
    """Folder of Debian's PostgreSQL server binaries (initdb, pg_ctl), or None."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    initdb = found[-1] if found else shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def postgres():
    """A throwaway PostgreSQL server on 127.0.0.1 (its unix socket in its temporary folder),
    run as the ``postgres`` user when we are root; yields its libpq URL without a database."""
    binaries = _postgres_bin()
    if binaries is None:
        pytest.skip("PostgreSQL is not installed (.ci/run installs Debian's package)")
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    root = Path(tempfile.mkdtemp(prefix="steerkit-pg-"))
    if as_postgres:
        shutil.chown(root, "postgres")
    port, data = _free_port(), root / "data"
    quiet = {"check": True, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    subprocess.run([*as_postgres, binaries / "initdb", "-D", data, "-A", "trust", "-U", "postgres"], **quiet)
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off"
    subprocess.run([*as_postgres, binaries / "pg_ctl", "-D", data, "-l", root / "log", "-o", options, "-w", "start"], **quiet)
    try:
        yield f"postgres@127.0.0.1:{port}"
    finally:
        subprocess.run([*as_postgres, binaries / "pg_ctl", "-D", data, "-m", "immediate", "stop"], **quiet)
        shutil.rmtree(root, ignore_errors=True)


def fresh_database(server: str, name: str) -> str:
    """Create database ``name`` on ``server``; returns its SQLAlchemy URL for Optuna."""
    import psycopg2

    connection = psycopg2.connect(f"postgresql://{server}/postgres")
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {name}")
    connection.close()
    return f"postgresql+psycopg2://{server}/{name}"


WORKER = """
import json, sys, time
from steerkit.metrics import make_steer_scorer
from steerkit.model_selection import TPESearchSteer
from tests.model_selection.fakes import CALLS, QUESTIONS, FakeSteered, true_utility

def score(question, response):  # the fake judge, slowed down so the workers overlap
    time.sleep(0.01)
    layer, coefficient, _ = response.split("|", 2)
    return true_utility(int(layer), float(coefficient), question)

url, start_at = sys.argv[1], float(sys.argv[2])
time.sleep(max(0.0, start_at - time.time()))  # both workers meet a fresh database together
TPESearchSteer(FakeSteered(), {"layer": list(range(1, 12)), "coefficient": [1.0, 2.0, 3.0]},
               make_steer_scorer(score, name="fake"), n_trials=12, random_state=0, storage=url,
               study_name="shared", refit=False, progress=False).fit(None, QUESTIONS)
print(json.dumps([[layer, coefficient] for layer, coefficient, _ in CALLS]))
"""


def test_two_workers_share_one_postgres_study_within_its_budget(postgres):
    url = fresh_database(postgres, "shared_study")
    start_at = time.time() + 4
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, url, str(start_at)], cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [worker.communicate(timeout=120) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], [err[-2000:] for _, err in outputs]
    generated = [[tuple(call) for call in json.loads(out)] for out, _ in outputs]
    assert all(generated)  # both workers judged configurations
    every = generated[0] + generated[1]
    assert len(every) == len(set(every)) == 12  # the global budget, and no configuration judged twice
    study = optuna.load_study(study_name="shared", storage=url)
    judged = [t for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)) if not t.user_attrs.get("repeat")]
    assert sorted((t.params["layer"], t.params["coefficient"]) for t in judged) == sorted(every)


def judge_in_a_dask_worker(question, response):
    """The fake judge; fails outside a Dask worker."""
    from distributed import get_worker

    get_worker()
    layer, coefficient, _ = response.split("|", 2)
    return true_utility(int(layer), float(coefficient), question)


def test_joblib_dask_backend_runs_a_grid_search():
    distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed (pip install distributed)")
    from joblib import parallel_config

    grid = {"layer": [3, 5, 7, 9], "coefficient": [1.0, 2.0, 3.0]}
    judge = make_steer_scorer(judge_in_a_dask_worker, name="fake")
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None):
        with parallel_config(backend="dask"):
            on_dask = GridSearchSteer(FakeSteered(), grid, judge, n_jobs=2, progress=False).fit(None, QUESTIONS)
    local = GridSearchSteer(FakeSteered(), grid, fake_judge, progress=False).fit(None, QUESTIONS)
    np.testing.assert_allclose(on_dask.cv_results_["mean_test_score"], local.cv_results_["mean_test_score"])
