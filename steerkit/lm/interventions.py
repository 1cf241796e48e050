"""Interventions: small modules applied at a :class:`~steerkit.lm.sites.Site`, ``h -> h + f(h)``.

Each intervention has a *position policy* saying which token positions it changes:

- ``"all"``: every position of every forward pass;
- ``"prompt"``: every position of the prefill pass (the prompt), none while decoding;
- ``"response"``: the positions whose next-token prediction is a response token: the last
  position of the prefill pass, then every decoded position (as in PersonaVectors/GRACE);
- ``"first"``: the first real (non-padding) token of each sequence;
- ``"last"``: the final position of every forward pass (the last prompt token in the prefill,
  then each new token);
- :class:`Window` ``(start, end)``: absolute positions ``start <= p < end`` counted from the
  first real token;
- a bool tensor ``(B, T)``: exactly those positions of a plain forward pass.

Prefill/decode comes from the key/value cache passed to the model; padding from its
attention mask (see :class:`ForwardContext`). ``"response"`` and ``"last"`` take the last
column of the prefill, which is every row's last prompt token under left padding (as
:func:`steerkit.lm.generation.generate` pads).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from steerkit._values import check_coefficient, check_finite
from steerkit.lm.sites import as_site

POSITION_POLICIES = ("all", "prompt", "response", "first", "last")
ACTIVATIONS = {"silu": nn.functional.silu, "relu": torch.relu, "gelu": nn.functional.gelu, "tanh": torch.tanh,
               "linear": lambda x: x}


@dataclass(frozen=True)
class Window:
    """Absolute positions ``start <= p < end``, counted from the first real token (0-based)."""

    start: int
    end: int

    def __post_init__(self):
        if not 0 <= self.start < self.end:
            raise ValueError(f"Window needs 0 <= start < end, got Window({self.start}, {self.end})")


@dataclass
class ForwardContext:
    """What a position policy needs to know about the current forward pass.

    prefill : True when no key/value cache was passed (a prompt, or a plain forward pass).
    attention_mask : ``(B, S)`` mask over the cached and current positions, or None (no padding).
    past : number of cached positions (``S - T``).
    """

    prefill: bool = True
    attention_mask: torch.Tensor | None = None
    past: int = 0

    def absolute_positions(self, batch: int, width: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        """``(index, real)`` for the ``width`` current positions, both ``(B, T)``: the position
        counted from each row's first real token, and whether the position is a real token."""
        if self.attention_mask is None:
            index = torch.arange(self.past, self.past + width, device=device).expand(batch, width)
            return index, torch.ones((batch, width), dtype=torch.bool, device=device)
        mask = self.attention_mask.to(device)
        return (mask.cumsum(-1) - 1)[:, -width:], mask[:, -width:].bool()


def check_positions(positions):
    """``positions`` if it is a position policy (see the module docs), else a ValueError."""
    if isinstance(positions, (Window, torch.Tensor)) or positions in POSITION_POLICIES:
        return positions
    raise ValueError(f"positions must be one of {POSITION_POLICIES}, a Window(start, end) or a bool (B, T) "
                     f"tensor, got {positions!r}")


def position_mask(positions, context: ForwardContext, hidden: torch.Tensor) -> torch.Tensor | None:
    """Bool mask ``(B, T)`` of the positions of ``hidden`` (B, T, d) that ``positions`` changes;
    None means every position."""
    batch, width = hidden.shape[:2]
    if isinstance(positions, torch.Tensor):
        if tuple(positions.shape) != (batch, width):
            raise ValueError(f"the token mask has shape {tuple(positions.shape)} but this forward pass has "
                             f"(batch, positions) = {(batch, width)}: pass a mask of that shape")
        return positions.to(device=hidden.device, dtype=torch.bool)
    if positions == "all" or (positions == "prompt" and context.prefill) or (positions == "response" and not context.prefill):
        return None
    if positions in ("response", "last"):
        if width == 1:
            return None
        mask = torch.zeros((batch, width), dtype=torch.bool, device=hidden.device)
        mask[:, -1] = True
        return mask
    if positions == "prompt":
        return torch.zeros((batch, width), dtype=torch.bool, device=hidden.device)
    index, real = context.absolute_positions(batch, width, hidden.device)
    if positions == "first":
        return real & (index == 0)
    return real & (index >= positions.start) & (index < positions.end)


def _unit(direction, name: str) -> torch.Tensor:
    array = check_finite(np.asarray(direction, dtype=np.float32).reshape(-1), name, "pass a finite vector")
    norm = float(np.linalg.norm(array))
    if norm == 0:
        raise ValueError(f"{name} is the zero vector: pass a direction with a non-zero norm")
    return torch.as_tensor(array / norm)


class Intervention(nn.Module):
    """Base class: ``forward(h) = h + delta(h)`` at ``site`` on the positions of ``positions``.

    Subclasses implement :meth:`delta` (``(B, T, d) -> (B, T, d)`` or a broadcastable ``(d,)``)
    and, when they hold a vector, set :attr:`width` so installing checks it against the model.
    """

    width: int | None = None

    def __init__(self, *, site, positions="response"):
        super().__init__()
        self.site = as_site(site)
        self.positions = check_positions(positions)

    def delta(self, hidden: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``hidden + delta(hidden)`` on the positions where ``mask`` (B, T) is True (all if None)."""
        delta = self.delta(hidden)
        if mask is None:
            return hidden + delta
        return hidden + mask.unsqueeze(-1).to(hidden.dtype) * delta


class AddVector(Intervention):
    """``h + coefficient * vector`` (today's steering). ``vector``: ``(d,)``, activation units.

    ``coefficient`` can be changed while installed (attribute or :meth:`set_coefficient`); the
    scaled vector is computed once per change, not on every forward pass.
    """

    def __init__(self, vector, *, site, coefficient: float = 1.0, positions="response"):
        super().__init__(site=site, positions=positions)
        array = check_finite(np.asarray(vector, dtype=np.float32), "steering vector", "fit it on finite activations")
        self.register_buffer("vector", torch.as_tensor(array).reshape(-1))
        self.width = self.vector.numel()
        self.coefficient = coefficient

    @property
    def coefficient(self) -> float:
        return self._coefficient

    @coefficient.setter
    def coefficient(self, value: float) -> None:
        self._coefficient = check_coefficient(value)
        self._scaled = None

    def set_coefficient(self, value: float) -> None:
        """Change the strength (takes effect on the next forward pass)."""
        self.coefficient = value

    def delta(self, hidden: torch.Tensor) -> torch.Tensor:
        vector = self.vector
        if self._scaled is None or self._scaled.dtype != vector.dtype or self._scaled.device != vector.device:
            self._scaled = self._coefficient * vector
        return self._scaled


class Ablate(Intervention):
    """Remove the component along the unit ``direction``: ``h - (h·u) u`` (directional ablation)."""

    def __init__(self, direction, *, site, positions="all"):
        super().__init__(site=site, positions=positions)
        self.register_buffer("direction", _unit(direction, "ablation direction"))
        self.width = self.direction.numel()

    def delta(self, hidden: torch.Tensor) -> torch.Tensor:
        return -(hidden @ self.direction).unsqueeze(-1) * self.direction


class SetProjection(Intervention):
    """Set the projection on the unit ``direction`` to ``value``: ``h + (value - h·u) u``."""

    def __init__(self, direction, value: float, *, site, positions="all"):
        super().__init__(site=site, positions=positions)
        self.register_buffer("direction", _unit(direction, "projection direction"))
        self.width = self.direction.numel()
        self.value = check_coefficient(value, "value")

    def delta(self, hidden: torch.Tensor) -> torch.Tensor:
        return (self.value - hidden @ self.direction).unsqueeze(-1) * self.direction


class LowRank(Intervention):
    """``h + W_up · act(W_down · h)`` with trainable ``W_down`` (rank, d) and ``W_up`` (d, rank).

    ``W_up`` starts at zero, so an untrained module is an exact no-op; ``W_down`` starts
    Gaussian with standard deviation ``1 / sqrt(d)``. ``activation``: one of
    ``silu``, ``relu``, ``gelu``, ``tanh``, ``linear``.
    """

    def __init__(self, hidden_size: int, rank: int = 8, *, site, activation: str = "silu", positions="all"):
        super().__init__(site=site, positions=positions)
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        if not (isinstance(hidden_size, int) and hidden_size > 0 and isinstance(rank, int) and rank > 0):
            raise ValueError(f"LowRank needs positive integers hidden_size and rank, got {hidden_size!r}, {rank!r}")
        self.activation = activation
        self.width = hidden_size
        self.W_down = nn.Parameter(torch.randn(rank, hidden_size) / hidden_size**0.5)
        self.W_up = nn.Parameter(torch.zeros(hidden_size, rank))

    def delta(self, hidden: torch.Tensor) -> torch.Tensor:
        return ACTIVATIONS[self.activation](hidden @ self.W_down.T) @ self.W_up.T


class LearnedVector(Intervention):
    """``h + coefficient * vector`` with a trainable ``vector`` (d,) that starts at zero (an exact
    no-op until trained): the trained vectors of BiPO, RePS and seed 002's ``--no-adapter``.

    Unlike :class:`AddVector` nothing is cached, so every forward pass sees the current value
    and gradients reach it; ``coefficient`` (e.g. BiPO's direction ±1) can change between passes.
    """

    def __init__(self, hidden_size: int, *, site, coefficient: float = 1.0, positions="all"):
        super().__init__(site=site, positions=positions)
        if not (isinstance(hidden_size, int) and hidden_size > 0):
            raise ValueError(f"LearnedVector needs a positive integer hidden_size, got {hidden_size!r}")
        self.width = hidden_size
        self.vector = nn.Parameter(torch.zeros(hidden_size))
        self.coefficient = check_coefficient(coefficient)

    def delta(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.coefficient * self.vector
