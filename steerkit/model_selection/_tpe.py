"""Optuna TPE search over ``SteeredModel`` parameters, resumable and shareable by storage.

Budget, resume and sharing
--------------------------
``n_trials`` is a budget of *distinct configurations judged* in the study: complete or pruned
trials count once per configuration; failed trials, repeats and trials left running by a dead
process do not. A repeated suggestion is not judged again: it is recorded with the earlier
score (so TPE learns nothing new is there) and, in a finite space, a random configuration not
judged yet is queued next, so TPE's favourite cannot eat the budget.

A study remembers what its answers depend on (fingerprints of the activations, questions,
judge, estimator settings and search space) and is only resumed with the same ones. An SQLite
study file is locked (``<file>.lock``, an OS lock that dies with its process) for the whole
search: one search per file; running trials found there were left by a killed run and are
marked failed. Workers on a database server (PostgreSQL) share a study instead: each seeds its
sampler with its own identity, stops when the study holds the budget (trials in progress
included) and never judges a configuration another worker judged or is judging.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import socket
import tempfile
import time
import urllib.parse
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import sqlalchemy.exc
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from steerkit.model_selection._base import BaseSearchSteer, evaluate_config
from steerkit.model_selection._cache import digest, param_label

_State = optuna.trial.TrialState
_FINISHED = (_State.COMPLETE, _State.PRUNED, _State.FAIL)
_JUDGED = (_State.COMPLETE, _State.PRUNED)
_TABLE_ATTR = "judged"
_HEARTBEAT_S, _GRACE_S = 20, 60  # a shared-database trial silent for _GRACE_S s belongs to a dead worker
_OPEN_TRIES = 5  # workers starting together on a fresh database race to create its tables


def _categorical(choices) -> tuple[list, dict]:
    """Optuna needs primitive categorical values: objects travel as their repr label."""
    labels = [param_label(c) for c in choices]
    if len(set(map(str, labels))) != len(labels):
        raise ValueError(f"categorical choices must be distinct, got {labels}")
    return labels, {str(label): choice for label, choice in zip(labels, choices)}


class _Space:
    """Parameter space: lists are categorical (as in GRACE), optuna distributions as given."""

    def __init__(self, space: dict):
        if not space:
            raise ValueError("param_distributions must name at least one parameter, e.g. {'layer': [5, 10]}")
        self.space = space
        self.lookup = {name: _categorical(v)[1] for name, v in space.items() if isinstance(v, (list, tuple))}

    def labels(self, initial_params: list[dict]) -> list[dict]:
        """Optuna's view (categorical labels) of user parameter dicts, checked against the space."""
        queued = []
        for params in initial_params:
            unknown = set(params) - set(self.space)
            if unknown:
                raise ValueError(f"initial_params names {sorted(unknown)}, which are not searched; "
                                 f"the space has {sorted(self.space)}")
            labelled = {}
            for name, value in params.items():
                if name in self.lookup:
                    label = param_label(value)
                    if str(label) not in self.lookup[name]:
                        raise ValueError(f"initial_params value {name}={value!r} is not one of the choices "
                                         f"{_categorical(self.space[name])[0]}")
                    value = label
                labelled[name] = value
            queued.append(labelled)
        return queued

    def params(self, labels: dict) -> dict:
        """User values of Optuna's view of a configuration (categorical labels back to objects)."""
        return {name: self.lookup[name][str(label)] if name in self.lookup else label for name, label in labels.items()}

    def describe(self) -> dict:
        """JSON-able description (choice labels, distribution reprs), for the study fingerprint."""
        return {name: _categorical(spec)[0] if isinstance(spec, (list, tuple)) else repr(spec)
                for name, spec in self.space.items()}

    def grid(self) -> list[dict] | None:
        """Every configuration (Optuna's view) of a finite space; None when a float has no step."""
        axes = {}
        for name, spec in self.space.items():
            if isinstance(spec, (list, tuple)):
                axes[name] = _categorical(spec)[0]
            elif isinstance(spec, optuna.distributions.CategoricalDistribution):
                axes[name] = list(spec.choices)
            elif isinstance(spec, optuna.distributions.IntDistribution):
                axes[name] = list(range(spec.low, spec.high + 1, spec.step))
            elif isinstance(spec, optuna.distributions.FloatDistribution) and spec.step is not None:
                axes[name] = [spec.low + k * spec.step for k in range(round((spec.high - spec.low) / spec.step) + 1)]
            else:
                return None
        return [dict(zip(axes, values)) for values in itertools.product(*axes.values())]

    def suggest(self, trial: optuna.Trial) -> dict:
        params = {}
        for name, spec in self.space.items():
            if isinstance(spec, (list, tuple)):
                label = trial.suggest_categorical(name, _categorical(spec)[0])
                params[name] = self.lookup[name][str(label)]
            elif isinstance(spec, optuna.distributions.FloatDistribution):
                params[name] = trial.suggest_float(name, spec.low, spec.high, log=spec.log, step=spec.step)
            elif isinstance(spec, optuna.distributions.IntDistribution):
                params[name] = trial.suggest_int(name, spec.low, spec.high, log=spec.log, step=spec.step)
            elif isinstance(spec, optuna.distributions.CategoricalDistribution):
                params[name] = trial.suggest_categorical(name, spec.choices)
            else:
                raise TypeError(f"param_distributions[{name!r}] must be a list or an optuna distribution, got {spec!r}")
        return params


class TPESearchSteer(BaseSearchSteer):
    """Optuna TPE search over ``SteeredModel`` parameters (GRACE: layer × coefficient).

    Parameters
    ----------
    estimator : a ``SteeredModel``.
    param_distributions : dict of name → list (categorical, as in GRACE) or an optuna
        distribution (``FloatDistribution``, ``IntDistribution``, ``CategoricalDistribution``).
    scoring : a steerkit judge (``SteerScorer``).
    n_trials : distinct configurations to judge in the study (failed trials and repeats do
        not count; see the module notes); a resumed study only runs the rest. A finite space
        with fewer configurations stops, with a warning, once all of them are judged.
    random_state : seed of the TPE sampler (fixed seed + ``n_jobs=1`` + a new study →
        reproducible). A resumed study moves the seed on by the trials it holds, and each of
        several workers mixes in its identity, so no run replays another's picks.
    layers : optional restricted layer set (replaces ``"layer"``); the geometry-guided search.
    cv, refit, cache, progress : as in :class:`GridSearchSteer`.
    n_jobs : worker processes sharing one study (a temporary journal file when no storage
        is given). Trials then interleave, so results depend on timing.
    storage, study_name : an Optuna storage URL (``"sqlite:///study.db"``,
        ``"postgresql+psycopg2://user:password@host/db"``) or object, and a study name: the
        search resumes after a crash or Ctrl-C, and workers on several machines can share a
        database study (same storage, same study name). Without ``study_name`` the name is
        derived from the fingerprints of the data, questions, judge, settings and space, so a
        changed setting starts a new study; a given ``study_name`` whose study was made for
        other ones is an error. Answers judged for a configuration are stored with its trial,
        so a configuration is never judged twice.
    pruner : optional Optuna pruner; answers are then generated in ``pruning_steps`` chunks of
        questions and a trial reports its running utility after each chunk.
    n_startup_trials : random trials before TPE starts modelling.
    initial_params : optional list of parameter dicts (values from the space, e.g.
        ``[{"layer": 20, "steerer__coefficient": 2.0}]``) evaluated first, before TPE's own
        choices: a warm start from a previous best or from the geometry (the best-aligned
        layers). Queued only when the study is new, so a resumed study does not repeat them.

    Attributes
    ----------
    study_ : the ``optuna.Study``.
    cv_results_, history_, best_* : as in :class:`GridSearchSteer`, one row per trial
        (repeats are rows with ``cached`` True).
    """

    def __init__(self, estimator=None, param_distributions=None, scoring=None, *, n_trials=50, random_state=None,
                 layers=None, cv=None, refit=True, n_jobs=None, cache=None, storage=None, study_name=None,
                 pruner=None, pruning_steps=3, n_startup_trials=10, initial_params=None, progress=True):
        self.estimator = estimator
        self.param_distributions = param_distributions
        self.scoring = scoring
        self.n_trials = n_trials
        self.random_state = random_state
        self.layers = layers
        self.cv = cv
        self.refit = refit
        self.n_jobs = n_jobs
        self.cache = cache
        self.storage = storage
        self.study_name = study_name
        self.pruner = pruner
        self.pruning_steps = pruning_steps
        self.n_startup_trials = n_startup_trials
        self.initial_params = initial_params
        self.progress = progress

    # -- study -----------------------------------------------------------------------------
    def _sampler(self, n_study_trials: int, worker: str | None) -> optuna.samplers.TPESampler:
        """TPE seeded by ``random_state`` plus the trials the study holds (a resumed search does
        not replay its first picks) and, for one of several workers, the worker's identity."""
        seed = None
        if self.random_state is not None:
            seed = int(self.random_state) + n_study_trials
            if worker is not None:
                seed = int(digest([seed, worker]), 16) % 2**32
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=self.n_startup_trials)

    def _storage(self, workers: int):
        if isinstance(self.storage, str):
            return _rdb_storage(self.storage)
        if self.storage is not None or workers == 1:
            return self.storage
        self._tmpdir = tempfile.TemporaryDirectory(prefix="steerkit-study-")
        backend = optuna.storages.journal.JournalFileBackend(str(Path(self._tmpdir.name) / "study.log"))
        return optuna.storages.JournalStorage(backend)

    def _fingerprint(self, space: _Space, questions: list[str]) -> dict:
        """Digests of what the study's answers depend on, by the name a user knows them by."""
        searched = tuple(space.space)
        settings = {name: value for name, value in self.estimator.get_params(deep=True).items()
                    if not any(name == s or name.startswith(s + "__") for s in searched)}
        return {"activations": self._context_["activations"][:16], "questions": digest(questions),
                "judge": self._context_["judge"], "estimator settings": digest(settings),
                "search space": digest(space.describe())}

    def _open_study(self, storage, space: _Space, questions: list[str]) -> optuna.Study:
        """Create or load the study and check it was made for the same data, questions, judge,
        settings and space (a study named after its fingerprint always is)."""
        parts = self._fingerprint(space, questions)
        name = self.study_name or (f"steerkit-{digest(parts)}" if storage is not None else None)
        study = optuna.create_study(direction="maximize", storage=storage, study_name=name,
                                    pruner=self.pruner or optuna.pruners.NopPruner(), load_if_exists=True)
        recorded = study.user_attrs.get("fingerprint")
        if recorded is None and not study.get_trials(deepcopy=False):
            study.set_user_attr("fingerprint", parts)
            recorded = parts
        changed = [part for part, value in parts.items() if (recorded or {}).get(part) != value]
        if changed:
            raise ValueError(f"study {name!r} was created for other {', '.join(changed)}; resume it with the same "
                             "ones, or give a new study_name (command line: --study-name)")
        return study

    def _objective(self, space: _Space, activations, questions: list[str]):
        def objective(trial: optuna.Trial) -> float:
            start = time.perf_counter()
            params = space.suggest(trial)
            key = self._key(params)
            trial.set_user_attr("key", key)
            earlier = _judged_before(trial.study, key, trial.number)
            if earlier is not None:
                return _repeat(trial, earlier)
            if _open_slots(trial.study, self.n_trials, before=trial.number) <= 0:
                trial.set_user_attr("surplus", True)  # another worker filled the budget meanwhile
                raise optuna.TrialPruned()
            cached = not self._cache_.missing(key, questions)
            chunks = np.array_split(np.arange(len(questions)), self.pruning_steps) if self.pruner else [np.arange(len(questions))]
            done: list[str] = []
            for step, chunk in enumerate(chunks):
                done += [questions[i] for i in chunk]
                missing = self._cache_.missing(key, done)
                if missing:
                    table, _ = evaluate_config(self.estimator, params, activations, missing, self.scoring)
                    self._cache_.store(key, table)
                judged = self._cache_.table(key, done)
                trial.set_user_attr(_TABLE_ATTR, _encode(judged))
                if self.pruner is not None and step < len(chunks) - 1:
                    trial.report(self.scoring.aggregate(judged), step)
                    if trial.should_prune():
                        trial.set_user_attr("seconds", time.perf_counter() - start)
                        raise optuna.TrialPruned()
            trial.set_user_attr("cached", cached)
            trial.set_user_attr("seconds", time.perf_counter() - start)
            return self.scoring.aggregate(self._cache_.table(key, questions))

        return objective

    def _enqueue_unjudged(self, study: optuna.Study, space: _Space) -> bool:
        """Queue a random configuration nobody has judged or is judging (after a repeat: TPE
        may keep proposing its favourite). False when a finite space has none left; a space
        with a continuous dimension queues nothing and lets TPE draw again."""
        grid = space.grid()
        if grid is None:
            return True
        trials = study.get_trials(deepcopy=False, states=(*_JUDGED, _State.RUNNING))
        taken = {t.user_attrs.get("key") for t in trials if _counts(t)}
        left = [labels for labels in grid if self._key(space.params(labels)) not in taken]
        if not left:
            warnings.warn(f"all {len(grid)} configurations of the search space are judged; stopping below "
                          f"n_trials={self.n_trials}", stacklevel=4)
            return False
        seed = None if self.random_state is None else [int(self.random_state), len(study.get_trials(deepcopy=False))]
        study.enqueue_trial(left[np.random.default_rng(seed).integers(len(left))])
        return True

    def _work(self, study: optuna.Study, space: _Space, activations, questions: list[str], worker: str | None) -> None:
        """Run trials, one at a time, until the study holds ``n_trials`` distinct judged
        configurations (trials in progress, e.g. on other workers, included)."""
        study.sampler = self._sampler(len(study.get_trials(deepcopy=False)), worker)
        objective = self._objective(space, activations, questions)
        finished: list[optuna.trial.FrozenTrial] = []
        with tqdm(total=self.n_trials, desc="TPE search", unit="config", disable=not self.progress) as bar:
            while (slots := _open_slots(study, self.n_trials)) > 0:
                bar.update(self.n_trials - slots - bar.n)
                study.optimize(objective, n_trials=1, catch=(), callbacks=[lambda s, t: finished.append(t)])
                last = finished[-1].user_attrs
                if last.get("surplus") or (last.get("repeat") and not self._enqueue_unjudged(study, space)):
                    break
            bar.update(self.n_trials - max(slots, 0) - bar.n)

    def _run(self, activations, questions: list[str]) -> list[dict]:
        space = _Space(self._apply_layers(dict(self.param_distributions or {})))
        workers = 1 if self.n_jobs in (None, 1) else (self.n_jobs if self.n_jobs > 0 else _cpu_count())
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        with _exclusive(self.storage) as locked:
            storage = self._storage(workers)
            study = self._open_study(storage, space, questions)
            if locked:
                _fail_running(study)
            if not study.get_trials(deepcopy=False):
                for params in space.labels(self.initial_params or []):
                    study.enqueue_trial(params)
            if workers == 1:
                shared = storage is not None and not locked
                self._work(study, space, activations, questions, f"{socket.gethostname()}/{os.getpid()}" if shared else None)
            elif _open_slots(study, self.n_trials) > 0:
                Parallel(n_jobs=workers)(delayed(_work_share)(self, storage, study.study_name, str(index), activations,
                                                              questions) for index in range(workers))
            self.study_ = study
            trials = study.get_trials(deepcopy=False, states=_FINISHED)
        return [_record(trial, space) for trial in trials if not trial.user_attrs.get("surplus")]


def _work_share(search: TPESearchSteer, storage, name: str, worker: str, activations, questions) -> None:
    """One of ``n_jobs`` worker processes on the shared study."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=name, storage=storage, pruner=search.pruner or optuna.pruners.NopPruner())
    space = _Space(search._apply_layers(dict(search.param_distributions)))
    search.set_params(progress=False)._work(study, space, activations, questions, worker)


def _sqlite_path(storage) -> Path | None:
    """The database file of an ``sqlite:///`` URL; None for other storages and in-memory SQLite."""
    if not isinstance(storage, str) or not storage.startswith("sqlite:///"):
        return None
    path = storage.removeprefix("sqlite:///").split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


@contextmanager
def _exclusive(storage):
    """Hold an exclusive OS lock on ``<file>.lock`` next to an SQLite study file; yields
    whether it did. The OS drops the lock when its process ends, even by a kill, so a dead
    run never leaves a stale lock (the empty lock file stays)."""
    path = _sqlite_path(storage)
    if path is None:
        yield False
        return
    lock = path.with_name(path.name + ".lock")
    with open(lock, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ValueError(f"another steerkit search is using {path} (lock file {lock}); wait for it to finish, "
                             "or give this run another output folder or storage") from None
        yield True


def _rdb_storage(url: str) -> optuna.storages.RDBStorage:
    """The storage behind an Optuna database URL. A database server (not SQLite) gets trial
    heartbeats, so a dead worker's running trial is failed after ``_GRACE_S`` seconds; creating
    the tables of a fresh database is retried (workers starting together race for it)."""
    heartbeat = {} if _sqlite_path(url) else {"heartbeat_interval": _HEARTBEAT_S, "grace_period": _GRACE_S}
    for attempt in range(_OPEN_TRIES):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats
                return optuna.storages.RDBStorage(url, **heartbeat)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError) as err:
            error = err
            time.sleep(0.2 * (attempt + 1))
        except sqlalchemy.exc.SQLAlchemyError as err:
            error = err
            break
    reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
    password = urllib.parse.urlsplit(url).password
    if password:
        reason = reason.replace(password, "***")
    raise ValueError(f"storage: cannot open the Optuna storage ({type(error).__name__}: {reason}); give a "
                     "working URL, e.g. sqlite:///study.db or postgresql+psycopg2://user:password@host/db")


def _fail_running(study: optuna.Study) -> None:
    """Mark running trials failed: under the study file's lock none can be alive, so they
    were left by a killed run."""
    for trial in study.get_trials(deepcopy=False, states=(_State.RUNNING,)):
        study.tell(trial.number, state=_State.FAIL)


def _counts(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether a trial can hold budget: repeats and surplus trials never do."""
    return not (trial.user_attrs.get("repeat") or trial.user_attrs.get("surplus"))


def _open_slots(study: optuna.Study, budget: int, before: int | None = None) -> int:
    """``budget`` minus the distinct configurations judged minus the trials in progress (only
    those numbered below ``before`` when given: a trial asks whether it may run)."""
    trials = study.get_trials(deepcopy=False)
    judged = {t.user_attrs.get("key") for t in trials if t.state in _JUDGED and _counts(t)}
    running = [t for t in trials if t.state == _State.RUNNING and _counts(t) and (before is None or t.number < before)]
    return budget - len(judged) - len(running)


def _judged_before(study: optuna.Study, key: str, number: int) -> optuna.trial.FrozenTrial | None:
    """The trial that judged configuration ``key``, or is judging it with a lower number."""
    for trial in study.get_trials(deepcopy=False, states=(*_JUDGED, _State.RUNNING)):
        if trial.number != number and trial.user_attrs.get("key") == key and _counts(trial):
            if trial.state != _State.RUNNING or trial.number < number:
                return trial
    return None


def _repeat(trial: optuna.Trial, earlier: optuna.trial.FrozenTrial) -> float:
    """Record a repeated configuration without judging it: the earlier score and answers when
    that trial is complete, pruned when it was pruned or is still running."""
    trial.set_user_attr("repeat", True)
    trial.set_user_attr("cached", True)
    if earlier.state != _State.COMPLETE:
        raise optuna.TrialPruned()
    trial.set_user_attr(_TABLE_ATTR, earlier.user_attrs[_TABLE_ATTR])
    return earlier.value


def _cpu_count() -> int:
    return os.cpu_count() or 1


def _encode(table: pd.DataFrame) -> dict:
    return {column: table[column].tolist() for column in table.columns}


def _record(trial: optuna.trial.FrozenTrial, space: _Space) -> dict:
    table = pd.DataFrame(trial.user_attrs.get(_TABLE_ATTR, {"question": [], "response": [], "concept": [],
                                                             "coherence": [], "utility": []}))
    state = {_State.COMPLETE: "complete", _State.PRUNED: "pruned"}.get(trial.state, "failed")
    return {"params": space.params(trial.params), "table": table, "seconds": trial.user_attrs.get("seconds", 0.0),
            "cached": bool(trial.user_attrs.get("cached", False)), "state": state}
