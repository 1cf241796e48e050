"""Optuna TPE search over ``SteeredModel`` parameters, resumable and shareable by storage."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from steerkit.model_selection._base import BaseSearchSteer, evaluate_config
from steerkit.model_selection._cache import param_label

_FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
_TABLE_ATTR = "judged"


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
    n_trials : total finished trials wanted in the study; a resumed study only runs the rest.
    random_state : seed of the TPE sampler (fixed seed + ``n_jobs=1`` → reproducible).
    layers : optional restricted layer set (replaces ``"layer"``); the geometry-guided search.
    cv, refit, cache, progress : as in :class:`GridSearchSteer`.
    n_jobs : worker processes sharing one study (a temporary journal file when no storage
        is given). Trials then interleave, so results depend on timing.
    storage, study_name : an Optuna storage URL (``"sqlite:///study.db"``) or object and a
        study name: the search resumes after a crash and several processes or machines can
        work on one study. Answers judged for a configuration are stored with its trial, so
        a repeated configuration is never generated twice.
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
    cv_results_, history_, best_* : as in :class:`GridSearchSteer`, one row per trial.
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
    def _sampler(self, offset: int = 0) -> optuna.samplers.TPESampler:
        seed = None if self.random_state is None else int(self.random_state) + offset
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=self.n_startup_trials)

    def _storage(self, workers: int):
        if self.storage is not None or workers == 1:
            return self.storage
        self._tmpdir = tempfile.TemporaryDirectory(prefix="steerkit-study-")
        backend = optuna.storages.journal.JournalFileBackend(str(Path(self._tmpdir.name) / "study.log"))
        return optuna.storages.JournalStorage(backend)

    def _objective(self, space: _Space, activations, questions: list[str]):
        def objective(trial: optuna.Trial) -> float:
            params = space.suggest(trial)
            key = self._key(params)
            earlier = _finished_table(trial.study, key)
            if earlier is not None:
                self._cache_.store(key, earlier)
            start = time.perf_counter()
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
            trial.set_user_attr("key", key)
            trial.set_user_attr("cached", cached)
            trial.set_user_attr("seconds", time.perf_counter() - start)
            return self.scoring.aggregate(self._cache_.table(key, questions))

        return objective

    def _run(self, activations, questions: list[str]) -> list[dict]:
        space = _Space(self._apply_layers(dict(self.param_distributions or {})))
        workers = 1 if self.n_jobs in (None, 1) else (self.n_jobs if self.n_jobs > 0 else _cpu_count())
        storage = self._storage(workers)
        name = self.study_name or ("steerkit-search" if storage is not None else None)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(direction="maximize", storage=storage, study_name=name, sampler=self._sampler(),
                                    pruner=self.pruner or optuna.pruners.NopPruner(), load_if_exists=True)
        if not study.get_trials(deepcopy=False):
            for params in space.labels(self.initial_params or []):
                study.enqueue_trial(params)
        remaining = max(0, self.n_trials - len(study.get_trials(deepcopy=False, states=_FINISHED)))
        objective = self._objective(space, activations, questions)
        if workers == 1:
            with tqdm(total=remaining, desc="TPE search", unit="trial", disable=not self.progress) as bar:
                study.optimize(objective, n_trials=remaining, callbacks=[lambda s, t: bar.update()], catch=())
        elif remaining:
            shares = [len(s) for s in np.array_split(np.arange(remaining), workers) if len(s)]
            Parallel(n_jobs=len(shares))(
                delayed(_optimize_share)(self, storage, name, offset, share, activations, questions)
                for offset, share in enumerate(shares)
            )
            study = optuna.load_study(study_name=name, storage=storage, sampler=self._sampler())
        self.study_ = study
        return [_record(trial, space) for trial in study.get_trials(deepcopy=False, states=_FINISHED)]


def _optimize_share(search: TPESearchSteer, storage, name, offset, n_trials, activations, questions) -> None:
    """One worker process: optimise ``n_trials`` on the shared study."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=name, storage=storage, sampler=search._sampler(offset + 1),
                              pruner=search.pruner or optuna.pruners.NopPruner())
    space = _Space(search._apply_layers(dict(search.param_distributions)))
    study.optimize(search._objective(space, activations, questions), n_trials=n_trials)


def _cpu_count() -> int:
    import os

    return os.cpu_count() or 1


def _encode(table: pd.DataFrame) -> dict:
    return {column: table[column].tolist() for column in table.columns}


def _finished_table(study: optuna.Study, key: str) -> pd.DataFrame | None:
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        if trial.user_attrs.get("key") == key and _TABLE_ATTR in trial.user_attrs:
            return pd.DataFrame(trial.user_attrs[_TABLE_ATTR])
    return None


def _record(trial: optuna.trial.FrozenTrial, space: _Space) -> dict:
    params = {}
    for name, label in trial.params.items():
        params[name] = space.lookup[name][str(label)] if name in space.lookup else label
    table = pd.DataFrame(trial.user_attrs.get(_TABLE_ATTR, {"question": [], "response": [], "concept": [],
                                                             "coherence": [], "utility": []}))
    state = {optuna.trial.TrialState.COMPLETE: "complete", optuna.trial.TrialState.PRUNED: "pruned"}.get(trial.state, "failed")
    return {"params": params, "table": table, "seconds": trial.user_attrs.get("seconds", 0.0),
            "cached": bool(trial.user_attrs.get("cached", False)), "state": state}
