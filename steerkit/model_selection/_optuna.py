"""Optuna search over ``SteeredModel`` parameters with any sampler, batched, resumable, shareable.

Batches
-------
The search asks its sampler for ``n_batch`` trials at once (Optuna's ask/tell), judges them in
one per-row-steered generation and tells their scores. A sampler proposing a batch has not
seen the batch's results, so ``n_batch > 1`` gives other (equally reproducible) results than
``n_batch=1``; the default TPE sampler then uses Optuna's constant liar so a batch spreads out.

Budget, resume and sharing
--------------------------
``n_trials`` is a budget of *distinct configurations judged* in the study: complete or pruned
trials count once per configuration; failed trials, repeats and trials left running by a dead
process do not. A repeated suggestion is not judged again: it is recorded with the earlier
score (so the sampler learns nothing new is there) and, in a finite space, a random
configuration not judged yet is queued next, so the sampler's favourite cannot eat the budget.

A study remembers what its answers depend on (fingerprints of the activations, questions,
judge, estimator settings, search space and search settings: seed, sampler, pruner) and is
only resumed with the same ones. An SQLite study file is locked (``<file>.lock``, an OS lock
that dies with its process) for the whole search: one search per file; running trials found
there were left by a killed run and are marked failed. Workers on a database server
(PostgreSQL) share a study instead: trials send heartbeats, a trial silent for a minute is
marked failed by the next worker that counts the budget, each worker seeds its sampler with its
own identity, waits while other workers' trials are running and the budget is full, stops when
the study holds the budget and never judges a configuration another worker judged or is
judging. Other storages (a storage object without heartbeats, a journal file) are neither
locked nor watched: a trial left running there by a killed run keeps its slot (a warning says
so).
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import os
import socket
import tempfile
import time
import urllib.parse
import warnings
from pathlib import Path

import joblib
import numpy as np
import optuna
import pandas as pd
import sqlalchemy.engine
import sqlalchemy.exc
from joblib import Parallel, delayed
from optuna.storages._heartbeat import get_heartbeat_thread, is_heartbeat_enabled
from tqdm.auto import tqdm

from steerkit._lock import exclusive
from steerkit.metrics.openai_client import redact
from steerkit.model_selection._base import BaseSearchSteer
from steerkit.model_selection._cache import answer_params, digest, param_label

_State = optuna.trial.TrialState
_FINISHED = (_State.COMPLETE, _State.PRUNED, _State.FAIL)
_JUDGED = (_State.COMPLETE, _State.PRUNED)
_TABLE_ATTR = "judged"
_HEARTBEAT_S, _GRACE_S = 20, 60  # a shared-database trial silent for _GRACE_S s belongs to a dead worker
_POLL_S = 5  # a worker waiting for other workers' trials checks the study this often
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


class OptunaSearchSteer(BaseSearchSteer):
    """Optuna search over ``SteeredModel`` parameters with any sampler (see the module notes).

    Parameters
    ----------
    estimator : a ``SteeredModel``.
    param_distributions : dict of name → list (categorical, as in GRACE) or an optuna
        distribution (``FloatDistribution``, ``IntDistribution``, ``CategoricalDistribution``).
    scoring : a steerkit judge (``SteerScorer``).
    sampler : an Optuna sampler (``RandomSampler(seed=0)``, ``GPSampler()``, ...), used as a
        copy per fit; it brings its own seed. ``None``: Optuna's TPE seeded by ``random_state``
        (:class:`TPESearchSteer` is that preset with its own ``n_startup_trials``).
    n_trials : distinct configurations to judge in the study (failed trials and repeats do
        not count; see the module notes); a resumed study only runs the rest. A finite space
        with fewer configurations stops, with a warning, once all of them are judged.
    n_batch : trials asked at once and judged in one per-row-steered generation. ``1`` is the
        classic sequential search; larger batches are faster per configuration but the
        sampler proposes a batch before seeing its results, so results differ from ``1``.
    random_state : seed of the default TPE sampler and of the search's own draws (the
        configuration queued after a repeat). Fixed seed + ``n_jobs=1`` + a new study →
        reproducible. A resumed study moves the TPE seed on by the trials it holds, and each of
        several workers mixes in its identity, so no run replays another's picks (a given
        ``sampler`` is reseeded at random in workers sharing a study).
    layers : optional restricted layer set (replaces ``"layer"``); the geometry-guided search.
    cv, refit, cache, progress : as in :class:`GridSearchSteer`.
    n_jobs : worker processes sharing one study (a temporary journal file when no storage
        is given). Trials then interleave, so results depend on timing.
    storage, study_name : an Optuna storage URL (``"sqlite:///study.db"``,
        ``"postgresql+psycopg2://user:password@host/db"``) or object, and a study name: the
        search resumes after a crash or Ctrl-C, and workers on several machines can share a
        database study (same storage, same study name). Without ``study_name`` the name is
        derived from the fingerprints of the data, questions, judge, settings, space and search
        settings, so a changed setting starts a new study; a given ``study_name`` whose study
        was made for other ones is an error. Answers judged for a configuration are stored
        with its trial, so a configuration is never judged twice.
    pruner : optional Optuna pruner; answers are then generated in ``pruning_steps`` chunks of
        questions and a trial reports its running utility after each chunk.
    initial_params : optional list of parameter dicts (values from the space, e.g.
        ``[{"layer": 20, "steerer__coefficient": 2.0}]``) evaluated first, before the
        sampler's own choices: a warm start from a previous best or from the geometry (the
        best-aligned layers). Queued only when the study is new, so a resumed study does not
        repeat them.

    Attributes
    ----------
    study_ : the ``optuna.Study``.
    cv_results_, history_, best_* : as in :class:`GridSearchSteer`, one row per trial
        (repeats are rows with ``cached`` True).
    """

    def __init__(self, estimator=None, param_distributions=None, scoring=None, *, sampler=None, n_trials=50,
                 n_batch=1, random_state=None, layers=None, cv=None, refit=True, n_jobs=None, cache=None,
                 storage=None, study_name=None, pruner=None, pruning_steps=3, initial_params=None, progress=True):
        self.estimator = estimator
        self.param_distributions = param_distributions
        self.scoring = scoring
        self.sampler = sampler
        self.n_trials = n_trials
        self.n_batch = n_batch
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
        self.initial_params = initial_params
        self.progress = progress

    # -- sampler -----------------------------------------------------------------------------
    def _tpe_options(self) -> dict:
        """Options of the default TPE sampler (besides its seed)."""
        return {}

    def _sampler(self, n_study_trials: int, worker: str | None) -> optuna.samplers.BaseSampler:
        """The sampler of one ``_work`` loop: a copy of ``sampler``, or TPE seeded by
        ``random_state`` plus the trials the study holds (a resumed search does not replay its
        first picks) and, for one of several workers, the worker's identity."""
        if self.sampler is not None:
            sampler = copy.deepcopy(self.sampler)
            if worker is not None:
                sampler.reseed_rng()
            return sampler
        seed = None
        if self.random_state is not None:
            seed = int(self.random_state) + n_study_trials
            if worker is not None:
                seed = int(digest([seed, worker]), 16) % 2**32
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # constant_liar
            return optuna.samplers.TPESampler(seed=seed, constant_liar=self.n_batch > 1, **self._tpe_options())

    def _search_settings(self) -> str:
        """Digest of what steers the proposals: seed, sampler (type and content), pruner."""
        sampler = ["TPESampler", self._tpe_options()] if self.sampler is None else joblib.hash(self.sampler)
        pruner = None if self.pruner is None else [type(self.pruner).__qualname__, joblib.hash(self.pruner)]
        return digest([self.random_state, sampler, pruner, self.pruning_steps if self.pruner else None])

    # -- study -----------------------------------------------------------------------------
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
        settings = {name: value for name, value in answer_params(self.estimator.get_params(deep=True)).items()
                    if not any(name == s or name.startswith(s + "__") for s in searched)}
        return {"activations": self._context_["activations"][:16], "questions": digest(questions),
                "judge": self._context_["judge"], "estimator settings": digest(settings),
                "search space": digest(space.describe()), "search settings": self._search_settings()}

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

    # -- one batch of trials -----------------------------------------------------------------
    def _ask(self, study: optuna.Study, space: _Space, size: int, asked: list,
             heartbeats: contextlib.ExitStack) -> tuple[dict, list]:
        """Ask up to ``size`` trials. Returns ``{trial: params}`` to judge and the repeats of a
        trial of this batch ``(trial, batch-mate)``; the other trials end at once (a repeat of an
        earlier trial is told its score; a surplus trial is pruned: others filled the budget).

        Every trial is appended to ``asked`` and starts its heartbeat (on ``heartbeats``) the
        moment it exists, so an error or a kill later in the batch never leaves it RUNNING
        unnoticed."""
        fresh: dict[optuna.Trial, dict] = {}
        deferred = []
        for _ in range(size):
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "Heartbeat of storage", UserWarning)  # we send them ourselves
                trial = study.ask()
            asked.append(trial)
            heartbeats.enter_context(get_heartbeat_thread(trial._trial_id, study._storage))
            params = space.suggest(trial)
            key = self._key(params)
            trial.set_user_attr("key", key)
            trials = study.get_trials(deepcopy=False)
            earlier = _judged_before(trials, key, trial.number)
            if earlier is not None:
                trial.set_user_attr("repeat", True)
                trial.set_user_attr("cached", True)
                mate = next((t for t in fresh if t.number == earlier.number), None)
                if mate is not None:
                    deferred.append((trial, mate))
                else:
                    _tell(study, trial, *_repeat(trial, earlier))
            elif _open_slots(trials, self.n_trials, before=trial.number) <= 0:
                trial.set_user_attr("surplus", True)  # another worker filled the budget meanwhile
                _tell(study, trial, _State.PRUNED)
            else:
                fresh[trial] = params
        return fresh, deferred

    def _judge(self, study: optuna.Study, fresh: dict, questions: list[str], evaluate_candidates) -> None:
        """Judge the ``fresh`` trials together, chunk by chunk when pruning, and tell them."""
        cached = {trial: not self._cache_.missing(trial.user_attrs["key"], questions) for trial in fresh}
        seconds = dict.fromkeys(fresh, 0.0)
        chunks = np.array_split(np.arange(len(questions)), self.pruning_steps) if self.pruner else [np.arange(len(questions))]
        done: list[str] = []
        for step, chunk in enumerate(chunks):
            done += [questions[i] for i in chunk]
            for (trial, params), record in zip(list(fresh.items()), evaluate_candidates(list(fresh.values()), done)):
                seconds[trial] += record["seconds"]
                trial.set_user_attr(_TABLE_ATTR, _encode(record["table"]))
                if self.pruner is not None and step < len(chunks) - 1:
                    trial.report(self.scoring.aggregate(record["table"]), step)
                    if trial.should_prune():
                        trial.set_user_attr("seconds", seconds[trial])
                        _tell(study, trial, _State.PRUNED)
                        del fresh[trial]
                        continue
                if step == len(chunks) - 1:
                    trial.set_user_attr("cached", cached[trial])
                    trial.set_user_attr("seconds", seconds[trial])
                    _tell(study, trial, _State.COMPLETE, self.scoring.aggregate(record["table"]))

    def _round(self, study: optuna.Study, space: _Space, size: int, questions: list[str], evaluate_candidates) -> list:
        """Ask, judge and tell one batch; returns its trials that were repeats. A trial not
        told when an error or Ctrl-C interrupts the batch is marked failed."""
        asked: list[optuna.Trial] = []
        try:
            with contextlib.ExitStack() as heartbeats:
                fresh, deferred = self._ask(study, space, size, asked, heartbeats)
                self._judge(study, dict(fresh), questions, evaluate_candidates)
            for trial, mate in deferred:
                _tell(study, trial, *_repeat(trial, study._storage.get_trial(mate._trial_id)))
        except BaseException:
            for trial in asked:
                if study._storage.get_trial(trial._trial_id).state == _State.RUNNING:
                    _tell(study, trial, _State.FAIL)
            raise
        return [trial for trial in asked if trial.user_attrs.get("repeat")]

    def _enqueue_unjudged(self, study: optuna.Study, grid: dict | None) -> bool:
        """Queue a random configuration nobody has judged or is judging (after a repeat: the
        sampler may keep proposing its favourite). ``grid`` maps the keys of a finite space to
        Optuna's view of them. False when none is left; a space with a continuous dimension
        (``grid`` None) queues nothing and lets the sampler draw again."""
        if grid is None:
            return True
        trials = study.get_trials(deepcopy=False)
        taken = {t.user_attrs.get("key") for t in trials if t.state in (*_JUDGED, _State.RUNNING) and _counts(t)}
        left = [labels for key, labels in grid.items() if key not in taken]
        if not left:
            warnings.warn(f"all {len(grid)} configurations of the search space are judged; stopping below "
                          f"n_trials={self.n_trials}", stacklevel=5)
            return False
        seed = None if self.random_state is None else [int(self.random_state), len(trials)]
        study.enqueue_trial(left[np.random.default_rng(seed).integers(len(left))])
        return True

    def _work(self, study: optuna.Study, space: _Space, questions: list[str], worker: str | None,
              evaluate_candidates) -> None:
        """Judge batches of trials until the study holds ``n_trials`` distinct judged
        configurations (trials in progress, e.g. on other workers, included); while other
        workers' trials fill the budget, wait for them (a dead worker's trial is failed by
        its heartbeat and frees its slot)."""
        study.sampler = self._sampler(len(study.get_trials(deepcopy=False)), worker)
        labels = space.grid()
        grid = None if labels is None else {self._key(space.params(point)): point for point in labels}
        watched = is_heartbeat_enabled(study._storage)
        with tqdm(total=self.n_trials, desc=f"{type(self).__name__}", unit="config", disable=not self.progress) as bar:
            while True:
                if watched:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                        optuna.storages.fail_stale_trials(study)
                trials = study.get_trials(deepcopy=False)
                slots = _open_slots(trials, self.n_trials)
                bar.update(max(0, min(self.n_trials - slots, self.n_trials) - bar.n))
                if slots <= 0:
                    if not (watched and any(t.state == _State.RUNNING and _counts(t) for t in trials)):
                        break
                    time.sleep(_POLL_S)
                    continue
                repeats = self._round(study, space, min(self.n_batch, slots), questions, evaluate_candidates)
                if not all(self._enqueue_unjudged(study, grid) for _ in repeats):
                    break

    def _run_search(self, evaluate_candidates) -> None:
        space = _Space(self._apply_layers(dict(self.param_distributions or {})))
        workers = 1 if self.n_jobs in (None, 1) else (self.n_jobs if self.n_jobs > 0 else _cpu_count())
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        questions = self._fit_questions_
        path = _sqlite_path(self.storage)
        with exclusive(path.with_name(path.name + ".lock"), path) if path else contextlib.nullcontext():
            storage = self._storage(workers)
            study = self._open_study(storage, space, questions)
            if path:
                _fail_running(study)
            else:
                _warn_unwatched(study, storage)
            if not study.get_trials(deepcopy=False):
                for params in space.labels(self.initial_params or []):
                    study.enqueue_trial(params)
            if workers == 1:
                shared = storage is not None and not path
                self._work(study, space, questions, f"{socket.gethostname()}/{os.getpid()}" if shared else None,
                           evaluate_candidates)
            elif _open_slots(study.get_trials(deepcopy=False), self.n_trials) > 0:
                Parallel(n_jobs=workers)(delayed(_work_share)(self, storage, study.study_name, str(index), questions,
                                                              evaluate_candidates) for index in range(workers))
            self.study_ = study
            self._study_trials_ = study.get_trials(deepcopy=False, states=_FINISHED)
            self._space_ = space

    def _trials(self) -> list[dict]:
        """Every finished trial of the study (earlier runs and other workers included), in
        trial order; surplus trials left out."""
        return [_record(trial, self._space_) for trial in self._study_trials_ if not trial.user_attrs.get("surplus")]


def _work_share(search: OptunaSearchSteer, storage, name: str, worker: str, questions, evaluate_candidates) -> None:
    """One of ``n_jobs`` worker processes on the shared study (it evaluates its batches itself)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=name, storage=storage, pruner=search.pruner or optuna.pruners.NopPruner())
    space = _Space(search._apply_layers(dict(search.param_distributions)))
    search.set_params(progress=False, n_jobs=1)._work(study, space, questions, worker, evaluate_candidates)


def _tell(study: optuna.Study, trial: optuna.Trial, state, value: float | None = None) -> None:
    """Tell a trial's end; a NaN score (every answer missing) makes it failed, quietly."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Optuna warns when it fails a NaN value
        study.tell(trial, value if state == _State.COMPLETE else None, state=state)


def _sqlite_path(storage) -> Path | None:
    """The database file of an ``sqlite:///`` URL; None for other storages and in-memory SQLite."""
    if not isinstance(storage, str) or not storage.startswith("sqlite:///"):
        return None
    path = storage.removeprefix("sqlite:///").split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


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
    raise ValueError(f"storage: cannot open the Optuna storage ({type(error).__name__}: "
                     f"{redact(reason, _passwords(url))}); give a working URL, e.g. sqlite:///study.db or "
                     "postgresql+psycopg2://user:password@host/db")


def _passwords(url: str) -> list[str]:
    """The password of a database URL as written (percent-encoded) and decoded."""
    try:
        decoded = sqlalchemy.engine.make_url(url).password
    except sqlalchemy.exc.ArgumentError:
        decoded = None
    return [p for p in (urllib.parse.urlsplit(url).password, decoded) if p]


def _fail_running(study: optuna.Study) -> None:
    """Mark running trials failed: under the study file's lock none can be alive, so they
    were left by a killed run."""
    for trial in study.get_trials(deepcopy=False, states=(_State.RUNNING,)):
        study.tell(trial.number, state=_State.FAIL)


def _warn_unwatched(study: optuna.Study, storage) -> None:
    """Warn when a storage without lock or heartbeats holds running trials: they may be a dead
    run's, and they keep their slots of the budget."""
    running = study.get_trials(deepcopy=False, states=(_State.RUNNING,))
    if running and not is_heartbeat_enabled(storage):
        warnings.warn(f"{len(running)} trials of study {study.study_name!r} are marked running and count against "
                      "n_trials; this storage has neither a lock nor heartbeats to tell whether their run is alive "
                      "(use an sqlite:/// URL or a database server URL)", stacklevel=4)


def _counts(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether a trial can hold budget: repeats and surplus trials never do."""
    return not (trial.user_attrs.get("repeat") or trial.user_attrs.get("surplus"))


def _open_slots(trials: list, budget: int, before: int | None = None) -> int:
    """``budget`` minus the distinct configurations judged minus the trials in progress (only
    those numbered below ``before`` when given: a trial asks whether it may run), from one
    snapshot ``trials`` of the study."""
    judged = {t.user_attrs.get("key") for t in trials if t.state in _JUDGED and _counts(t)}
    running = [t for t in trials if t.state == _State.RUNNING and _counts(t) and (before is None or t.number < before)]
    return budget - len(judged) - len(running)


def _judged_before(trials: list, key: str, number: int) -> optuna.trial.FrozenTrial | None:
    """The trial (of the snapshot ``trials``) that judged configuration ``key``, or is judging
    it with a lower number."""
    for trial in trials:
        if trial.number != number and trial.user_attrs.get("key") == key and _counts(trial):
            if trial.state in _JUDGED or (trial.state == _State.RUNNING and trial.number < number):
                return trial
    return None


def _repeat(trial: optuna.Trial, earlier: optuna.trial.FrozenTrial) -> tuple:
    """How a repeated configuration ends without being judged: ``(state, value)``, the
    earlier score and answers when that trial is complete, pruned when it was pruned or is
    still running."""
    if earlier.state != _State.COMPLETE:
        return _State.PRUNED, None
    trial.set_user_attr(_TABLE_ATTR, earlier.user_attrs[_TABLE_ATTR])
    return _State.COMPLETE, earlier.value


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
