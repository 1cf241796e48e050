"""``RePSSteerer``: a rank-1 steering vector trained by reference-free preference steering.

RePS (Wu et al., arXiv 2505.20809, the AxBench follow-up; code: stanfordnlp/axbench,
``PreferenceVectorIntervention`` with ``loss_type="scaled_simpo"``) trains one vector ``v`` at
one layer, added at every position, with two terms per (question ``x``, target ``y_T``,
opposite ``y_O``) triple, each :func:`~steerkit.training.preference.reps_loss`:

- promotion: with ``h + v`` the model must prefer ``y_T`` over ``y_O`` (per-token
  log-likelihoods, ``y_T`` weighted by ``max(log π(y_O|x) − log π(y_T|x), 1)``);
- suppression: with the null-space intervention ``h − relu(h·v)/‖v‖² · v`` (the positive
  component of ``h`` along ``v`` removed; AxBench's ``null_it_out``) the model must prefer
  ``y_O`` over ``y_T`` (weighted by ``max(log π(y_T|x) − log π(y_O|x), 1)``).

The loss of a triple is the sum of the two terms, averaged over the micro-batch. No reference
model enters the logits; the unsteered log-probabilities π only set the weights and are scored
once per triple before training. What steerkit does differently from the paper/code:

- the suppression term is evaluated on the bare question ``x``: the paper prepends a
  concept-eliciting steering prompt there (``x^s``), which :class:`PreferenceData` does not carry;
- the promotion term adds ``v`` itself (factor 1) rather than a factor drawn per example from a
  list, so the trained vector is used at ``coefficient = 1``;
- no dropout on the vector and no bias term (AxBench's ``proj.bias``, zero at initialisation).

``v`` starts uniform in ``±1/√d`` (nn.Linear's initialisation, as in AxBench; the null-space
term needs ``v ≠ 0``), drawn under the estimator's ``seed``. Default settings: AdamW, learning
rate 0.04, batch size 6, 10 epochs, no warm-up, no weight decay: AxBench trains its rank-1
vectors at rates of this order for several epochs; they were not tuned on steerkit's models.
"""

from __future__ import annotations

import torch
from torch import nn

from steerkit.lm.interventions import Intervention, LearnedVector
from steerkit.training.data import steered_answer_log_probs
from steerkit.training.preference import reps_loss
from steerkit.training.preference_vector import PreferenceVectorSteerer


class NullSpace(Intervention):
    """``h − relu(h·v)/‖v‖² · v``: RePS's suppression, at the site and positions of ``source``.

    Shares ``source.vector`` (``v``, not copied), so gradients reach the trained vector.
    """

    def __init__(self, source: LearnedVector):
        super().__init__(site=source.site, positions=source.positions)
        self.width = source.width
        self.vector = source.vector

    def delta(self, hidden: torch.Tensor) -> torch.Tensor:
        vector = self.vector
        return -(torch.relu(hidden @ vector) / vector.square().sum()).unsqueeze(-1) * vector


class RePSSteerer(PreferenceVectorSteerer):
    """A rank-1 steering vector at one layer trained by RePS (see the module docs).

    Parameters
    ----------
    model : a float32 :class:`steerkit.lm.LanguageModel` (frozen while training).
    layer : the residual stream after this block is steered (None = the middle block).
    coefficient : multiplies the vector when generating (``interventions()``).
    learning_rate, warmup_ratio, weight_decay, gradient_accumulation, batch_size, epochs, seed :
        see :class:`~steerkit.training.loop.TrainingSettings`; ``seed`` also seeds ``v``'s start.
    metric, progress : see :class:`~steerkit.training._base.TrainedSteerer`.

    ``fit(data)`` takes :class:`~steerkit.training.preference_data.PreferenceData`, or
    ``fit(questions, y)`` with ``y`` an ``(n, 2)`` array of ``[target, opposite]`` answers.
    :meth:`suppression_interventions` gives the trained null-space intervention.
    """

    method = "reps"

    def __init__(self, model=None, *, layer: int | None = None, coefficient: float = 1.0,
                 learning_rate: float = 0.04, warmup_ratio: float = 0.0, weight_decay: float = 0.0,
                 gradient_accumulation: int = 1, batch_size: int = 6, epochs: int = 10, seed: int = 0,
                 metric=None, progress: bool = True):
        self.model = model
        self.layer = layer
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
        vector = self._vector(lm)
        bound = lm.hidden_size ** -0.5
        with torch.no_grad():
            nn.init.uniform_(vector.vector, -bound, bound)
        return [vector]

    def _batch_loss(self, lm, interventions, data, indices) -> tuple[torch.Tensor, int]:
        """Mean over the micro-batch of the promotion plus the suppression term (nats)."""
        for vector in interventions:
            vector.coefficient = 1.0
        batch = data.batch(indices, lm.tokenizer.pad_token_id)
        rows = torch.as_tensor(indices)
        target_tokens, opposite_tokens = batch.n_answer_tokens.to(lm.device).view(2, -1)
        unsteered_target = data.unsteered_targets[rows].to(lm.device)
        unsteered_opposite = data.unsteered_opposites[rows].to(lm.device)
        target, opposite = steered_answer_log_probs(lm, batch, interventions).view(2, -1)
        promotion = reps_loss(target, opposite, target_tokens, opposite_tokens, unsteered_target, unsteered_opposite)
        target, opposite = steered_answer_log_probs(lm, batch, [NullSpace(v) for v in interventions]).view(2, -1)
        suppression = reps_loss(opposite, target, opposite_tokens, target_tokens, unsteered_opposite, unsteered_target)
        return (promotion + suppression).mean(), 2 * int(batch.lengths.sum())

    def suppression_interventions(self) -> list[NullSpace]:
        """The trained null-space intervention(s) ``h − relu(h·v)/‖v‖² · v``, to suppress the concept."""
        return [NullSpace(vector) for vector in self.interventions()]
