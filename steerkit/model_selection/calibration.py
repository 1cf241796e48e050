"""Strength calibration: the coefficient that moves the model by a target KL (bits).

Activation norms differ ~1000x across layers, so one coefficient means very different
strengths at different layers. :func:`calibrate_coefficient` finds, by bisection, the
coefficient whose mean :func:`~steerkit.metrics.steering_kl_bits` on calibration prompts is a
target number of bits; :class:`CalibratedSteeredModel` is a ``SteeredModel`` whose strength is
that target (``target_kl_bits``) instead of the steerer's coefficient, so a search varies
``target_kl_bits`` and compares layers in KL units.

Design choice: a subclass with its own parameter rather than a ``coefficient="kl:0.5"``
string, because the coefficient belongs to the steerer (which never sees a model) while the
calibration needs the model, the layer and prompts: a ``SteeredModel``-level parameter keeps
every parameter one type and one meaning.
"""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import numpy as np

from steerkit._values import MAX_ABS_COEFFICIENT
from steerkit.lm.hooks import check_site
from steerkit.lm.interventions import AddVector
from steerkit.metrics.kl_bits import steering_kl_bits
from steerkit.steering.steered_model import SteeredModel


class NonMonotoneKLWarning(UserWarning):
    """The KL of a larger coefficient came out smaller: the bisection bracket may be wrong."""


class Calibration(NamedTuple):
    """``coefficient`` reaching ``kl_bits`` (mean over the calibration prompts) for a
    ``target_kl_bits``; ``evaluations`` lists every ``(coefficient, kl_bits)`` tried, in order;
    ``monotone`` is False when a larger coefficient gave a smaller KL among them."""

    coefficient: float
    kl_bits: float
    target_kl_bits: float
    evaluations: tuple
    monotone: bool


def calibrate_coefficient(lm, vector, layer, prompts, target_kl_bits: float, *, tolerance: float = 0.05,
                          max_iter: int = 30, start: float = 1.0, positions="response", answers=None,
                          max_new_tokens: int = 32, batch_size: int = 8) -> Calibration:
    """The coefficient ``c >= 0`` at which ``c * vector`` at ``layer`` moves ``lm`` by
    ``target_kl_bits`` (mean per-position KL over ``prompts``, see
    :func:`~steerkit.metrics.steering_kl_bits`).

    The bracket ``[0, hi]`` starts at ``hi = start`` and doubles until ``KL(hi) >= target``
    (KL is 0 at ``c = 0``); bisection then halves it until ``|KL - target| <= tolerance *
    target`` or ``max_iter`` evaluations. KL is monotone in ``|c|`` in practice; when a larger
    coefficient gives a smaller KL the result carries ``monotone=False`` and a
    :class:`NonMonotoneKLWarning` is emitted (the result is then one of possibly several
    crossings). When ``max_iter`` runs out, the closest coefficient tried is returned.

    Parameters
    ----------
    vector : ``(d,)`` steering vector (activation units), added with ``positions``.
    layer : int or :class:`~steerkit.lm.Site`.
    prompts : calibration questions (chat-templated by ``lm``).
    target_kl_bits : positive target, bits per response position.
    tolerance : relative tolerance on the KL (0.05: within 5 % of the target).
    answers : the unsteered answers to teacher-force on; None generates them greedily once.
    """
    if not (isinstance(target_kl_bits, (int, float, np.floating)) and 0 < target_kl_bits < math.inf):
        raise ValueError(f"target_kl_bits must be a positive number of bits (e.g. 0.5), got {target_kl_bits!r}")
    if not 0 < tolerance < 1:
        raise ValueError(f"tolerance must be a fraction of the target between 0 and 1 (e.g. 0.05), got {tolerance!r}")
    if not 0 < start <= MAX_ABS_COEFFICIENT:
        raise ValueError(f"start must be a positive coefficient up to {MAX_ABS_COEFFICIENT:g}, got {start!r}")
    prompts = list(prompts)
    site = check_site(lm, layer)
    if answers is None:
        answers = lm.generate(prompts, max_new_tokens=max_new_tokens, batch_size=batch_size)
    evaluations: list[tuple[float, float]] = []

    def kl(coefficient: float) -> float:
        steering = [AddVector(vector, site=site, coefficient=coefficient, positions=positions)]
        bits = float(np.mean(steering_kl_bits(lm, prompts, steering, answers=answers, batch_size=batch_size)))
        evaluations.append((coefficient, bits))
        return bits

    def close(bits: float) -> bool:
        return abs(bits - target_kl_bits) <= tolerance * target_kl_bits

    low, high = 0.0, float(start)
    high_bits = kl(high)
    while high_bits < target_kl_bits and not close(high_bits) and len(evaluations) < max_iter:
        if high * 2 > MAX_ABS_COEFFICIENT:
            raise ValueError(f"target_kl_bits={target_kl_bits:g} is out of reach: coefficient {high:g} moves the model "
                             f"by only {high_bits:.3g} bits at layer {site.layer}; choose a smaller target")
        low, high = high, high * 2
        high_bits = kl(high)
    while not close(evaluations[-1][1]) and len(evaluations) < max_iter:
        middle = (low + high) / 2
        if kl(middle) < target_kl_bits:
            low = middle
        else:
            high = middle
    best = min(evaluations, key=lambda pair: abs(pair[1] - target_kl_bits))
    ordered = sorted(evaluations)
    monotone = all(b2 >= b1 - 1e-6 * max(1.0, b1) for (_, b1), (_, b2) in zip(ordered, ordered[1:]))
    if not monotone:
        warnings.warn(f"KL in bits is not monotone in the coefficient at layer {site.layer} (tried "
                      f"{', '.join(f'{c:g}: {b:.3g}' for c, b in ordered)}); the calibrated coefficient "
                      f"{best[0]:g} is one of possibly several crossings", NonMonotoneKLWarning, stacklevel=2)
    return Calibration(best[0], best[1], float(target_kl_bits), tuple(evaluations), monotone)


class CalibratedSteeredModel(SteeredModel):
    """A :class:`~steerkit.steering.SteeredModel` whose strength is a KL target in bits.

    ``fit`` fits the steerer as ``SteeredModel`` does, then :func:`calibrate_coefficient` finds
    the coefficient at which the vector at ``layer`` moves the model by ``target_kl_bits`` on
    ``calibration_questions`` (the steerer's own ``coefficient`` is ignored). A search varies
    ``target_kl_bits`` (``{"layer": [...], "target_kl_bits": [0.25, 0.5, 1.0]}``), so strengths
    are comparable across layers.

    Parameters
    ----------
    target_kl_bits : positive, bits per response position.
    calibration_questions : prompts of the calibration (keep them apart from evaluation questions).
    tolerance, max_iter : see :func:`calibrate_coefficient`.
    Other parameters: as ``SteeredModel``.

    Attributes
    ----------
    calibration_ : the :class:`Calibration` found by ``fit``.
    """

    def __init__(self, model=None, steerer=None, layer=None, steer_positions="response",
                 fit_position: str = "response_avg", max_new_tokens: int = 64, batch_size: int = 16, *,
                 target_kl_bits: float = 0.5, calibration_questions=(), tolerance: float = 0.05, max_iter: int = 30):
        super().__init__(model, steerer, layer, steer_positions, fit_position, max_new_tokens, batch_size)
        self.target_kl_bits = target_kl_bits
        self.calibration_questions = calibration_questions
        self.tolerance = tolerance
        self.max_iter = max_iter

    def fit(self, X, y=None, **fit_params):
        """Fit the steerer (see ``SteeredModel.fit``), then calibrate its coefficient."""
        super().fit(X, y, **fit_params)
        questions = list(self.calibration_questions)
        if not questions:
            raise ValueError("CalibratedSteeredModel needs calibration_questions: a few prompts to measure KL on")
        self.calibration_ = calibrate_coefficient(
            self.model, self.vector_, self._check(), questions, self.target_kl_bits,
            tolerance=self.tolerance, max_iter=self.max_iter, positions=self.steer_positions,
            max_new_tokens=self.max_new_tokens, batch_size=self.batch_size)
        return self

    @property
    def coefficient_(self) -> float:
        """The calibrated strength (after ``fit``)."""
        if not hasattr(self, "calibration_"):
            raise AttributeError("coefficient_ is known after fit (the calibration needs the fitted vector)")
        return float(self.calibration_.coefficient)
