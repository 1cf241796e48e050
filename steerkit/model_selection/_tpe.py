"""``TPESearchSteer``: the Optuna search preset with GRACE's TPE sampler (see ``_optuna``)."""

from __future__ import annotations

from steerkit.model_selection._optuna import OptunaSearchSteer


class TPESearchSteer(OptunaSearchSteer):
    """Optuna TPE search over ``SteeredModel`` parameters (GRACE: layer × coefficient).

    :class:`OptunaSearchSteer` with its TPE sampler (seeded by ``random_state``) and TPE's
    one option: ``n_startup_trials``, the random trials before TPE starts modelling. Every
    other parameter, attribute and the budget, resume and sharing rules are those of
    :class:`OptunaSearchSteer`.
    """

    sampler = None  # the preset always uses the TPE sampler built by OptunaSearchSteer._sampler

    def __init__(self, estimator=None, param_distributions=None, scoring=None, *, n_trials=50, n_batch=1,
                 random_state=None, layers=None, cv=None, refit=True, n_jobs=None, cache=None, storage=None,
                 study_name=None, pruner=None, pruning_steps=3, n_startup_trials=10, initial_params=None,
                 progress=True):
        self.estimator = estimator
        self.param_distributions = param_distributions
        self.scoring = scoring
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
        self.n_startup_trials = n_startup_trials
        self.initial_params = initial_params
        self.progress = progress

    def _tpe_options(self) -> dict:
        return {"n_startup_trials": self.n_startup_trials}
