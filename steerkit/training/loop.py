"""The optimisation loop shared by every trained steerer.

AdamW on the steerer's parameters only (the language model stays frozen), a linear learning
rate warm-up over the first ``warmup_ratio`` of the optimiser steps then a linear decay to 0
(the shape of transformers' ``Trainer`` schedule, which seed 002 trains with, except that the
first warm-up step already uses ``1/warmup`` of the rate where transformers uses 0; see
:func:`linear_schedule`), gradient accumulation, seeded shuffling, a progress bar with the
running loss, and a clear stop when the loss stops being finite.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
import torch
from sklearn.utils.validation import check_scalar
from tqdm.auto import tqdm


class TrainingDiverged(ValueError):
    """The loss became NaN or infinite."""


@dataclass(frozen=True)
class TrainingSettings:
    """How a trained steerer is optimised (seed 002's defaults).

    learning_rate : peak AdamW learning rate.
    warmup_ratio : share of optimiser steps (0–1) spent warming the rate up linearly.
    weight_decay : AdamW weight decay.
    gradient_accumulation : micro-batches per optimiser step.
    batch_size : examples per micro-batch.
    epochs : passes over the training examples.
    seed : seeds the shuffling (and, in the steerers, the initialisation).
    """

    learning_rate: float = 9e-4
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    gradient_accumulation: int = 2
    batch_size: int = 8
    epochs: int = 1
    seed: int = 0

    def __post_init__(self):
        for name in ("learning_rate", "warmup_ratio", "weight_decay"):
            if isinstance(getattr(self, name), float) and not math.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be a finite number, got {getattr(self, name)}")
        check_scalar(self.learning_rate, "learning_rate", numbers.Real, min_val=0, max_val=1,
                     include_boundaries="right")
        check_scalar(self.warmup_ratio, "warmup_ratio", numbers.Real, min_val=0, max_val=1, include_boundaries="left")
        check_scalar(self.weight_decay, "weight_decay", numbers.Real, min_val=0)
        for name in ("gradient_accumulation", "batch_size", "epochs"):
            check_scalar(getattr(self, name), name, numbers.Integral, min_val=1)


@dataclass
class TrainingHistory:
    """What happened during training, one entry per optimiser step.

    loss : mean micro-batch loss of the step. learning_rate : the rate the step used.
    tokens : tokens in the step's forward passes (prompt + answer, padding excluded).
    seconds : wall time of the step.
    """

    loss: list[float] = field(default_factory=list)
    learning_rate: list[float] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    @property
    def tokens_per_second(self) -> float:
        """Training throughput over all steps (tokens/s)."""
        return sum(self.tokens) / sum(self.seconds) if self.seconds else math.nan

    def to_dict(self) -> dict:
        return {"loss": self.loss, "learning_rate": self.learning_rate, "tokens": self.tokens,
                "seconds": self.seconds, "tokens_per_second": self.tokens_per_second}


@contextlib.contextmanager
def frozen(module: torch.nn.Module) -> Iterator[None]:
    """Turn off gradients of every parameter of ``module`` inside the block, then restore them."""
    parameters = list(module.parameters())
    before = [p.requires_grad for p in parameters]
    try:
        for p in parameters:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in zip(parameters, before):
            p.requires_grad_(flag)


def micro_batches(n_examples: int, settings: TrainingSettings) -> list[np.ndarray]:
    """Index micro-batches for all epochs, shuffled per epoch by ``settings.seed``."""
    rng = np.random.default_rng(settings.seed)
    return [order[i : i + settings.batch_size]
            for order in (rng.permutation(n_examples) for _ in range(settings.epochs))
            for i in range(0, n_examples, settings.batch_size)]


def linear_schedule(n_steps: int, warmup_ratio: float) -> Callable[[int], float]:
    """Multiplier of the learning rate at optimiser step ``s`` (0-based): linear warm-up over
    ``ceil(warmup_ratio * n_steps)`` steps, then linear decay to 0 at ``n_steps``."""
    warmup = math.ceil(warmup_ratio * n_steps)

    def multiplier(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (n_steps - step) / max(1, n_steps - warmup))

    return multiplier


def optimise(parameters: list[torch.nn.Parameter], n_examples: int,
             batch_loss: Callable[[np.ndarray], tuple[torch.Tensor, int]], settings: TrainingSettings, *,
             progress: bool = True, desc: str = "training") -> TrainingHistory:
    """Minimise ``batch_loss`` over ``parameters`` with AdamW; return the history.

    Parameters
    ----------
    parameters : the trainable tensors (the steerer's; freeze the model with :func:`frozen`).
    n_examples : number of training examples; micro-batches are index arrays into them.
    batch_loss : ``indices -> (loss, tokens)``: the differentiable mean loss of those examples
        and the tokens their forward passes processed.
    settings : see :class:`TrainingSettings`.

    Raises
    ------
    ValueError : no examples, or no trainable parameter.
    TrainingDiverged : the loss became NaN or infinite (the message names the step and rate).
    """
    if n_examples < 1:
        raise ValueError("there are no training examples: pass at least one")
    parameters = [p for p in parameters if p.requires_grad]
    if not parameters:
        raise ValueError("there is nothing to train: every parameter has requires_grad=False")
    batches = micro_batches(n_examples, settings)
    accumulation = settings.gradient_accumulation
    n_steps = math.ceil(len(batches) / accumulation)
    optimiser = torch.optim.AdamW(parameters, lr=settings.learning_rate, weight_decay=settings.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, linear_schedule(n_steps, settings.warmup_ratio))
    history = TrainingHistory()
    bar = tqdm(total=n_steps, desc=desc, disable=not progress, unit="step")
    try:
        for step in range(n_steps):
            started, losses, tokens = time.perf_counter(), [], 0
            group = batches[step * accumulation : (step + 1) * accumulation]
            rate = optimiser.param_groups[0]["lr"]
            with torch.enable_grad():
                for indices in group:
                    loss, n_tokens = batch_loss(indices)
                    if not torch.isfinite(loss.detach()):
                        raise TrainingDiverged(f"the training loss became {float(loss.detach())} at step {step + 1} of {n_steps} "
                                               f"(learning rate {rate:.3g}): lower learning_rate or check the data")
                    (loss / len(group)).backward()
                    losses.append(float(loss.detach()))
                    tokens += int(n_tokens)
            optimiser.step()
            scheduler.step()
            optimiser.zero_grad(set_to_none=True)
            history.loss.append(float(np.mean(losses)))
            history.learning_rate.append(rate)
            history.tokens.append(tokens)
            history.seconds.append(time.perf_counter() - started)
            bar.update()
            bar.set_postfix(loss=f"{np.mean(history.loss[-20:]):.4f}")
    finally:
        bar.close()
    return history
