"""``BiPOSteerer``: one steering vector trained by bi-directional preference optimisation.

BiPO (Cao et al., arXiv 2406.00045) adds a trainable vector ``v`` to the residual stream after
one decoder block, at every position (prompt and answer), and trains it on (question, target
answer, opposite answer) triples with a DPO loss against the unsteered model
(:func:`~steerkit.training.preference.bipo_loss`):

    −log σ( d·β·[log π(r_T|q; +d·v) − log π_ref(r_T|q)] − d·β·[log π(r_O|q; +d·v) − log π_ref(r_O|q)] )

with the direction ``d ∈ {−1, +1}`` drawn once per micro-batch (a seeded generator), so that
``+v`` makes the target answer more likely than the reference does and ``−v`` the opposite one.
Log-probabilities are summed over answer tokens (not length-normalised), as in DPO; π_ref is
the frozen model without steering, scored once per example before training.

Defaults follow the paper where they fit: β = 0.1, AdamW at learning rate 5e-4, batch size 4,
no weight decay. The paper trains 20 epochs with a constant rate; steerkit's shared loop
warms up over ``warmup_ratio`` (0 here) and then decays linearly, and defaults to 10 epochs
(a concept gives 60–100 triples, so about 200 optimiser steps).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from steerkit._values import check_coefficient
from steerkit.lm.interventions import LearnedVector
from steerkit.training.data import steered_answer_log_probs
from steerkit.training.preference import bipo_loss
from steerkit.training.preference_data import EncodedPreferences
from steerkit.training.preference_vector import PreferenceVectorSteerer


@dataclass
class _DirectedPreferences:
    """Training data of one fit: the encoded triples and the generator of the directions ``d``."""

    examples: EncodedPreferences
    directions: np.random.Generator

    def __len__(self) -> int:
        return len(self.examples)


class BiPOSteerer(PreferenceVectorSteerer):
    """A steering vector at one layer trained by BiPO (see the module docs).

    Parameters
    ----------
    model : a float32 :class:`steerkit.lm.LanguageModel` (frozen while training).
    layer : the residual stream after this block is steered (None = the middle block).
    beta : β of the DPO loss.
    coefficient : multiplies the vector when generating (``interventions()``); ``−1`` steers
        towards the opposite answers. Training always uses ``±1``.
    learning_rate, warmup_ratio, weight_decay, gradient_accumulation, batch_size, epochs, seed :
        see :class:`~steerkit.training.loop.TrainingSettings`; ``seed`` also seeds the directions.
    metric, progress : see :class:`~steerkit.training._base.TrainedSteerer`.

    ``fit(data)`` takes :class:`~steerkit.training.preference_data.PreferenceData`, or
    ``fit(questions, y)`` with ``y`` an ``(n, 2)`` array of ``[target, opposite]`` answers.

    Example
    -------
    >>> data = preference_data_from_concept(load_concept("pirate"), lm, generations="runs/pirate")
    >>> steerer = BiPOSteerer(lm, layer=15).fit(data)
    >>> steerer.generate(["What is rain?"], max_new_tokens=48)
    """

    method = "bipo"

    def __init__(self, model=None, *, layer: int | None = None, beta: float = 0.1, coefficient: float = 1.0,
                 learning_rate: float = 5e-4, warmup_ratio: float = 0.0, weight_decay: float = 0.0,
                 gradient_accumulation: int = 1, batch_size: int = 4, epochs: int = 10, seed: int = 0,
                 metric=None, progress: bool = True):
        self.model = model
        self.layer = layer
        self.beta = beta
        self.coefficient = coefficient
        self.learning_rate = learning_rate
        self.warmup_ratio = warmup_ratio
        self.weight_decay = weight_decay
        self.gradient_accumulation = gradient_accumulation
        self.batch_size = batch_size
        self.epochs = epochs
        self.seed = seed
        self.metric = metric
        self.progress = progress

    def _build_interventions(self, lm) -> list[LearnedVector]:
        check_coefficient(self.beta, "beta")
        if not self.beta > 0:
            raise ValueError(f"beta must be a positive number, got {self.beta!r}")
        return [self._vector(lm)]

    def _training_data(self, lm, X, y) -> _DirectedPreferences:
        return _DirectedPreferences(super()._training_data(lm, X, y), np.random.default_rng([self.seed, 1]))

    def _batch_loss(self, lm, interventions, data, indices) -> tuple[torch.Tensor, int]:
        """Mean BiPO loss (nats) of the micro-batch, steered with ``d·v`` for one drawn ``d``."""
        direction = float(data.directions.choice([-1.0, 1.0]))
        for vector in interventions:
            vector.coefficient = direction
        batch = data.examples.batch(indices, lm.tokenizer.pad_token_id)
        target, opposite = steered_answer_log_probs(lm, batch, interventions).view(2, -1)
        rows = torch.as_tensor(indices)
        losses = bipo_loss(target, opposite, data.examples.unsteered_targets[rows].to(target.device),
                           data.examples.unsteered_opposites[rows].to(target.device), direction, beta=self.beta)
        return losses.mean(), int(batch.lengths.sum())
