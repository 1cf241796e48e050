"""``SteeredModel``: a language model plus a steerer, site and positions, as one estimator."""

from __future__ import annotations

import contextlib
import warnings
from typing import Iterator

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from steerkit.lm.hooks import check_site
from steerkit.lm.interventions import AddVector, Intervention, check_positions
from steerkit.lm.sites import Site
from steerkit.steering.hooks import Steering


class SteeredModel(BaseEstimator):
    """Generate answers from ``model`` with ``steerer``'s vector added at ``layer``.

    Parameters
    ----------
    model : :class:`steerkit.lm.LanguageModel` (shared, never copied by ``clone``).
    steerer : a steerer estimator (``PVSteerer()``, ...). ``fit`` fits a clone of it; a
        steerer that is already fitted can be used without calling ``fit``.
    layer : int or :class:`steerkit.lm.Site`, where to add the vector: 1..L = output of block
        ``layer``, 0 = embeddings; ``Site(l, "attn")`` / ``Site(l, "mlp")`` steer a sublayer's output.
    steer_positions : which token positions are steered while generating: ``"response"``
        (default), ``"prompt"``, ``"all"`` or another policy of
        :mod:`steerkit.lm.interventions`; see :class:`steerkit.steering.Steering`.
    fit_position : which pooled activations ``fit`` reads from an ``ActivationSet``
        (``"response_avg"`` in GRACE).
    max_new_tokens, batch_size : generation settings.
    positions, position : deprecated spellings of ``steer_positions`` and ``fit_position``
        (a ``DeprecationWarning``; removed in the next release).

    The steering strength is the steerer's ``coefficient`` (nested parameter
    ``steerer__coefficient``), so a search varies it like any other hyperparameter.

    Attributes
    ----------
    steerer_ : the fitted steerer (after ``fit``).
    """

    def __init__(
        self,
        model=None,
        steerer=None,
        layer: int | Site | None = None,
        steer_positions="response",
        fit_position: str = "response_avg",
        max_new_tokens: int = 64,
        batch_size: int = 16,
        positions=None,
        position: str | None = None,
    ):
        self.model = model
        self.steerer = steerer
        self.layer = layer
        self.steer_positions = steer_positions
        self.fit_position = fit_position
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.positions = positions
        self.position = position

    def _renamed(self, old: str, new: str):
        """The value of parameter ``new``, or of its deprecated spelling ``old`` when that is set."""
        value = getattr(self, old)
        if value is None:
            return getattr(self, new)
        warnings.warn(f"SteeredModel({old}=...) is deprecated and will be removed in the next release: "
                      f"use {new}=...", DeprecationWarning, stacklevel=3)
        return value

    def fit(self, X, y=None, **fit_params):
        """Fit a clone of ``steerer``.

        ``X`` is an ``ActivationSet`` (its ``fit_position`` activations, labels, contrast and
        instruction ids are used) or an array ``(n, L + 1, d)`` / ``(n, d)`` passed on to the
        steerer together with ``y`` and ``fit_params``.
        """
        if self.steerer is None:
            raise ValueError("SteeredModel needs a steerer, e.g. SteeredModel(model, PVSteerer(), layer=12)")
        self.component_ = getattr(X, "component", None)  # where an ActivationSet was read; None for arrays
        if hasattr(X, "steerer_inputs"):
            X, y, metadata = X.steerer_inputs(self._renamed("position", "fit_position"))
            fit_params = {**metadata, **fit_params}
        self.steerer_ = clone(self.steerer).fit(X, y, **fit_params)
        return self

    # -- the vector -------------------------------------------------------------------------
    def _fitted_steerer(self):
        if hasattr(self, "steerer_"):
            return self.steerer_
        try:
            check_is_fitted(self.steerer)
        except (NotFittedError, TypeError):
            raise NotFittedError(
                "SteeredModel is not fitted: call fit(activation_set) or pass an already fitted steerer"
            ) from None
        return self.steerer

    def _check(self) -> Site:
        if self.model is None:
            raise ValueError("SteeredModel needs a model: SteeredModel(model=load_model(), ...)")
        if self.layer is None:
            raise ValueError(f"SteeredModel needs a layer in 0..{self.model.n_blocks}")
        check_positions(self._renamed("positions", "steer_positions"))
        fitted_at = getattr(self, "component_", None)
        if fitted_at is None or isinstance(self.layer, Site):
            site = check_site(self.model, self.layer)
        else:  # an int layer steers where the activations were read: the residual stream or a sublayer
            site = check_site(self.model, Site(int(self.layer), fitted_at))
        if fitted_at is not None and site.component != fitted_at:
            raise ValueError(f"the steerer was fitted on {fitted_at} activations but layer={self.layer!r} steers the "
                             f"{site.component} output; use layer=Site({site.layer}, {fitted_at!r}) or activations "
                             f"read at {site.component}")
        return site

    @property
    def vector_(self) -> np.ndarray:
        """The steering vector used at ``layer``, shape ``(d,)``, activation units."""
        layer = self._check().layer
        vector = np.asarray(self._fitted_steerer().vector_)
        if vector.ndim == 2:
            if vector.shape[0] != self.model.n_blocks + 1:
                raise ValueError(
                    f"the steerer was fitted on {vector.shape[0]} layers but {self.model.name} has "
                    f"{self.model.n_blocks + 1} (0..{self.model.n_blocks})"
                )
            vector = vector[layer]
        return vector

    @property
    def coefficient_(self) -> float:
        """The strength in use (the fitted steerer's ``coefficient``)."""
        return float(self._fitted_steerer().coefficient)

    def interventions(self) -> list[Intervention]:
        """The steering this fitted model applies, as interventions: one
        :class:`~steerkit.lm.interventions.AddVector` of ``coefficient_ * vector_`` at ``layer``.

        Several fitted models can steer different rows of one batch:
        ``lm.generate(questions * K, interventions=[m.interventions() for m in models for _ in questions])``.
        """
        site = self._check()
        return [AddVector(self.vector_, site=site, coefficient=self.coefficient_,
                          positions=self._renamed("positions", "steer_positions"))]

    @contextlib.contextmanager
    def steering(self) -> Iterator[Steering]:
        """Context manager with the vector installed on the model for all rows (named ``"steer"``)."""
        site = self._check()
        with Steering(self.model, positions=self._renamed("positions", "steer_positions")) as installed:
            installed.add(self.vector_, site, self.coefficient_, name="steer")
            yield installed

    # -- generation -------------------------------------------------------------------------
    def generate(self, questions, system=None, *, progress: bool = False) -> list[str]:
        """Steered greedy answers to ``questions`` (list of str), optional system prompt(s)."""
        with self.steering():
            return self.model.generate(
                list(questions), system, max_new_tokens=self.max_new_tokens,
                batch_size=self.batch_size, progress=progress,
            )

    def predict(self, X) -> np.ndarray:
        """Steered answers to the questions ``X`` as an object array (scikit-learn style)."""
        return np.asarray(self.generate(X), dtype=object)
