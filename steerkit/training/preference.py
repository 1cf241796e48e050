"""Preference losses of the trained steering vectors, as pure functions of log-probabilities.

Every argument is a ``(B,)`` tensor of *summed* answer log-probabilities (nats) as
:func:`~steerkit.lm.scoring.answer_log_probs` returns them, or of answer lengths (tokens);
every function returns the ``(B,)`` per-example losses (nats), so a steerer averages them
over its micro-batch. Log-probabilities of the unsteered model never receive gradients here.

- :func:`bipo_loss`: BiPO (arXiv 2406.00045), DPO of the model steered with ``+d·v`` against
  the unsteered model, for a direction ``d = ±1``.
- :func:`reps_loss`: one term of RePS (arXiv 2505.20809), the reference-free, length-normalised
  preference of the steered model for one answer over another, weighted by how strongly the
  unsteered model prefers the other one (see :mod:`steerkit.training.reps` for how the
  steerer uses it in both directions).
"""

from __future__ import annotations

import torch
from torch.nn import functional


def bipo_loss(steered_target: torch.Tensor, steered_opposite: torch.Tensor, unsteered_target: torch.Tensor,
              unsteered_opposite: torch.Tensor, direction, *, beta: float = 0.1) -> torch.Tensor:
    """``−log σ( d·β·[log π(r_T|q; +d·v) − log π_ref(r_T|q)] − d·β·[log π(r_O|q; +d·v) − log π_ref(r_O|q)] )``.

    Parameters
    ----------
    steered_target, steered_opposite : ``(B,)`` log π of the target / opposite answer with
        ``+d·v`` added (differentiable).
    unsteered_target, unsteered_opposite : ``(B,)`` log π_ref of the same answers without steering.
    direction : ``d``, ``+1`` or ``−1`` (a float, or a ``(B,)`` tensor of them).
    beta : β, the DPO temperature (BiPO uses 0.1).
    """
    margin = (steered_target - unsteered_target.detach()) - (steered_opposite - unsteered_opposite.detach())
    return -functional.logsigmoid(direction * beta * margin)


def reps_loss(steered_preferred: torch.Tensor, steered_other: torch.Tensor, preferred_tokens: torch.Tensor,
              other_tokens: torch.Tensor, unsteered_preferred: torch.Tensor, unsteered_other: torch.Tensor) -> torch.Tensor:
    """``−log σ( w/|y_w| · log π_s(y_w|x) − 1/|y_l| · log π_s(y_l|x) )``, ``w = max(log π(y_l|x) − log π(y_w|x), 1)``.

    The length-normalised (per-token) log-likelihood of the preferred answer ``y_w`` under the
    steered model ``π_s`` must beat that of the other answer ``y_l``; no reference model enters
    the logit. The weight ``w`` (RePS's β, AxBench's ``scaled_simpo`` with scaler 1) grows with
    how much the unsteered model ``π`` prefers ``y_l`` (summed log-probabilities), so answers the
    model resists get a stronger push; it is a constant (no gradient).

    Parameters
    ----------
    steered_preferred, steered_other : ``(B,)`` summed log π_s of ``y_w`` and ``y_l`` (differentiable).
    preferred_tokens, other_tokens : ``(B,)`` answer lengths ``|y_w|``, ``|y_l|`` in tokens (≥ 1).
    unsteered_preferred, unsteered_other : ``(B,)`` summed log π of ``y_w`` and ``y_l``.
    """
    weight = torch.clamp((unsteered_other - unsteered_preferred).detach(), min=1.0)
    logits = weight * steered_preferred / preferred_tokens - steered_other / other_tokens
    return -functional.logsigmoid(logits)
