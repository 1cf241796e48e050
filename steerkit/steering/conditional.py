"""``ConditionalSteering``: CAST (Lee et al. 2024, arXiv 2409.05907) on a language model.

The prompt's pooled activation at the condition layer is projected on a
:class:`~steerkit.estimators.ConditionDetector`'s direction; rows whose projection reaches the
detector's threshold get the behaviour interventions, the others none (per-row interventions of
:func:`steerkit.lm.generation.generate`, so one batch mixes both and each row's answer equals
the one it gets alone: the plain answer or the steered one).
"""

from __future__ import annotations

import numpy as np
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from steerkit.activations.extraction import extract_activations
from steerkit.estimators.condition import ConditionDetector
from steerkit.lm.generation import generate
from steerkit.lm.hooks import check_layer
from steerkit.lm.interventions import Intervention

POOLINGS = ("prompt_avg", "prompt_last")


class ConditionalSteering:
    """Apply ``interventions`` only to prompts that meet a condition read at ``layer``.

    Parameters
    ----------
    lm : :class:`steerkit.lm.LanguageModel`.
    layer : the condition layer (0..L; residual stream after block ``layer``).
    interventions : the behaviour, a list of :mod:`~steerkit.lm.interventions` (e.g. ``AddVector``).
    detector : a :class:`~steerkit.estimators.ConditionDetector` (fitted: used as is; unfitted:
        :meth:`fit` fits a clone). Default ``ConditionDetector()``.
    pooling : ``"prompt_avg"`` (default, the mean over the prompt's tokens as in CAST) or
        ``"prompt_last"`` (the last prompt token).
    batch_size : prompts per forward pass when reading the condition.

    Prompts are formatted prompt texts (``lm.chat_prompt(question)``).

    Attributes
    ----------
    detector_ : the fitted detector.
    """

    def __init__(self, lm, layer: int, interventions, *, detector: ConditionDetector | None = None,
                 pooling: str = "prompt_avg", batch_size: int = 16):
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.interventions = list(interventions)
        if not self.interventions or not all(isinstance(i, Intervention) for i in self.interventions):
            raise ValueError("interventions must be a non-empty list of steerkit.lm.interventions (e.g. AddVector)")
        self.lm, self.layer, self.pooling, self.batch_size = lm, check_layer(lm, layer), pooling, batch_size
        self.detector = ConditionDetector() if detector is None else detector
        try:
            check_is_fitted(self.detector)
            self.detector_ = self.detector
        except NotFittedError:  # fit() fits a clone
            pass

    def condition_activations(self, prompts: list[str]) -> np.ndarray:
        """Pooled activations ``(n, d)`` of ``prompts`` at the condition layer (activation units)."""
        pooled = extract_activations(self.lm, list(prompts), batch_size=self.batch_size)[self.pooling]
        return pooled[:, self.layer]

    def fit(self, prompts: list[str], y) -> "ConditionalSteering":
        """Fit the detector on ``prompts`` labelled ``y`` (on-condition = the larger label)."""
        self.detector_ = clone(self.detector).fit(self.condition_activations(prompts), y)
        return self

    def applies(self, prompts: list[str]) -> np.ndarray:
        """Bool ``(n,)``: whether each prompt meets the condition (projection >= threshold)."""
        if not hasattr(self, "detector_"):
            raise NotFittedError("this ConditionalSteering is not fitted: call fit(prompts, y) or pass a fitted detector")
        return self.detector_.decision_function(self.condition_activations(prompts)) >= 0

    def per_row(self, prompts: list[str]) -> list[list[Intervention] | None]:
        """Per-row interventions for :func:`~steerkit.lm.generation.generate`: the behaviour for
        prompts meeting the condition, None for the others."""
        return [self.interventions if met else None for met in self.applies(prompts)]

    def generate(self, prompts: list[str], **kwargs) -> list[str]:
        """Answers to ``prompts`` steered where the condition is met (``kwargs``: those of
        :func:`~steerkit.lm.generation.generate`, e.g. ``max_new_tokens``)."""
        return generate(self.lm, list(prompts), interventions=self.per_row(prompts), **kwargs)
