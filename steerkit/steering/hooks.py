"""Forward hooks that read or add to the residual stream.

Layer ``l >= 1`` is the output of decoder block ``l`` (1-based); layer 0 is the embedding
output, i.e. the input of the first block. Reading and steering use the same place, so
steering at layer ``l`` changes exactly what reading at layer ``l`` sees (steering hooks are
prepended so they run before any reader on the same block).
"""

from __future__ import annotations

import contextlib
import itertools
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch

from steerkit._values import check_coefficient, check_finite

POSITION_MODES = ("all", "prompt", "response")

# A residual hook gets the hidden states (B, T, d) and returns replacements (or None to keep).
ResidualFn = Callable[[torch.Tensor], "torch.Tensor | None"]


def check_layer(lm, layer: int) -> int:
    """Validate a layer index against ``lm`` (0..L) and return it as an int."""
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)):
        raise TypeError(f"layer must be an integer in 0..{lm.n_layers}, got {layer!r}")
    if not 0 <= layer <= lm.n_layers:
        raise ValueError(
            f"layer {layer} is out of range for {lm.name} ({lm.n_layers} blocks): use 0..{lm.n_layers} "
            "(0 = embedding output, l = output of block l)"
        )
    return int(layer)


def add_residual_hook(lm, layer: int, fn: ResidualFn, *, prepend: bool = False):
    """Install ``fn`` on the residual stream at ``layer``; return the removable handle."""
    layer = check_layer(lm, layer)
    if layer == 0:
        def pre_hook(module, args, kwargs):
            hidden = args[0] if args else kwargs["hidden_states"]
            new = fn(hidden)
            if new is None:
                return None
            if args:
                return (new, *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": new}

        return lm.blocks[0].register_forward_pre_hook(pre_hook, with_kwargs=True, prepend=prepend)

    def hook(module, args, output):
        hidden = output[0] if isinstance(output, tuple) else output
        new = fn(hidden)
        if new is None:
            return None
        return (new, *output[1:]) if isinstance(output, tuple) else new

    return lm.blocks[layer - 1].register_forward_hook(hook, prepend=prepend)


@contextlib.contextmanager
def record_activations(lm, layers) -> Iterator[dict[int, list[torch.Tensor]]]:
    """Record the residual stream at ``layers`` for every forward pass inside the block.

    Yields ``{layer: [tensor (B, T, d), ...]}``, one detached copy per forward call (a
    generation makes one call per new token). Hooks are removed on exit, even after an error.
    """
    records: dict[int, list[torch.Tensor]] = {int(layer): [] for layer in layers}
    handles = []
    try:
        for layer, store in records.items():
            handles.append(add_residual_hook(lm, layer, lambda h, store=store: store.append(h.detach().clone())))
        yield records
    finally:
        for handle in handles:
            handle.remove()


def _is_prefill(kwargs) -> bool:
    cache = kwargs.get("past_key_values")
    if cache is None:
        return True
    if hasattr(cache, "get_seq_length"):
        return int(cache.get_seq_length()) == 0
    return len(cache) == 0


@dataclass
class _Entry:
    layer: int
    vector: torch.Tensor  # (d,) on the model's device and dtype
    coefficient: float


class Steering:
    """Context manager adding ``coefficient * vector`` to the residual stream.

    Several vectors may be installed at once (same or different layers); their coefficients
    can be changed while installed with :meth:`set_coefficient`. All hooks are removed on exit,
    also when the body raises.

    ``positions`` chooses the token positions that are steered during generation:

    - ``"all"``: every prompt and generated position;
    - ``"prompt"``: the prompt positions only (the prefill pass);
    - ``"response"``: the positions whose next-token prediction is a response token, i.e. the
      last prompt position and every generated position (as in PersonaVectors/GRACE).

    The prefill/decode distinction comes from the KV cache passed to the model, so it holds
    for ``model.generate`` and for plain forward passes (a forward pass without a cache is a
    prefill). For teacher-forced passes, :meth:`token_mask` sets an explicit ``(B, T)`` mask.

    Example
    -------
    >>> with Steering(lm, positions="response") as steering:
    ...     steering.add(vector, layer=12, coefficient=4.0, name="pirate")
    ...     answers = lm.generate(["How do I boil an egg?"])
    ...     steering.set_coefficient("pirate", 8.0)
    """

    def __init__(self, lm, *, positions: str = "response"):
        if positions not in POSITION_MODES:
            raise ValueError(f"positions must be one of {POSITION_MODES}, got {positions!r}")
        self.lm = lm
        self.positions = positions
        self._entries: dict[str, _Entry] = {}
        self._layer_handles: dict[int, object] = {}
        self._phase_handle = None
        self._prefill = True
        self._mask: torch.Tensor | None = None
        self._names = itertools.count()

    # -- vectors ---------------------------------------------------------------------------
    def add(self, vector, layer: int, coefficient: float = 1.0, name: str | None = None) -> str:
        """Add ``coefficient * vector`` (shape ``(d,)``) at ``layer``; return its name.

        A vector with NaN or infinite values, or a coefficient that is not finite or beyond
        ``±steerkit._values.MAX_ABS_COEFFICIENT``, is refused (``ValueError``).
        """
        layer = check_layer(self.lm, layer)
        coefficient = check_coefficient(coefficient)
        array = check_finite(np.asarray(vector, dtype=np.float32), "steering vector", "fit it on finite activations")
        tensor = torch.as_tensor(array).reshape(-1)
        if tensor.numel() != self.lm.hidden_size:
            raise ValueError(
                f"steering vector has {tensor.numel()} values but {self.lm.name} has hidden size "
                f"{self.lm.hidden_size}"
            )
        name = name if name is not None else f"vector{next(self._names)}"
        if name in self._entries:
            raise ValueError(f"a steering vector named {name!r} is already installed")
        tensor = tensor.to(device=self.lm.device, dtype=self.lm.dtype)
        self._entries[name] = _Entry(layer, tensor, coefficient)
        if self._phase_handle is not None:
            self._install_layer(layer)
        return name

    def set_coefficient(self, name: str, coefficient: float) -> None:
        """Change the strength of the installed vector ``name`` (takes effect immediately)."""
        if name not in self._entries:
            raise KeyError(f"no steering vector named {name!r}; installed: {sorted(self._entries)}")
        self._entries[name].coefficient = check_coefficient(coefficient)

    def remove(self, name: str) -> None:
        """Stop adding the vector ``name``."""
        del self._entries[name]

    @property
    def names(self) -> list[str]:
        return list(self._entries)

    @contextlib.contextmanager
    def token_mask(self, mask) -> Iterator[None]:
        """Steer exactly the positions where ``mask`` (bool, ``(B, T)``) is True, for this block."""
        self._mask = torch.as_tensor(mask, dtype=torch.bool, device=self.lm.device)
        try:
            yield
        finally:
            self._mask = None

    # -- hook plumbing ---------------------------------------------------------------------
    def __enter__(self) -> "Steering":
        if self._phase_handle is not None:
            raise RuntimeError("this Steering is already installed")
        self._phase_handle = self.lm.model.register_forward_pre_hook(self._note_phase, with_kwargs=True)
        for layer in {entry.layer for entry in self._entries.values()}:
            self._install_layer(layer)
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._layer_handles.values():
            handle.remove()
        self._layer_handles.clear()
        if self._phase_handle is not None:
            self._phase_handle.remove()
            self._phase_handle = None

    def _note_phase(self, module, args, kwargs):
        self._prefill = _is_prefill(kwargs)

    def _install_layer(self, layer: int) -> None:
        if layer not in self._layer_handles:
            fn = lambda hidden, layer=layer: self._steer(hidden, layer)  # noqa: E731
            self._layer_handles[layer] = add_residual_hook(self.lm, layer, fn, prepend=True)

    def _delta(self, layer: int) -> torch.Tensor | None:
        deltas = [e.coefficient * e.vector for e in self._entries.values() if e.layer == layer and e.coefficient != 0]
        return torch.stack(deltas).sum(0) if deltas else None

    def _steer(self, hidden: torch.Tensor, layer: int) -> torch.Tensor | None:
        delta = self._delta(layer)
        if delta is None:
            return None
        if self._mask is not None:
            if self._mask.shape != hidden.shape[:2]:
                raise ValueError(f"token mask has shape {tuple(self._mask.shape)}, hidden states {tuple(hidden.shape[:2])}")
            return hidden + self._mask.unsqueeze(-1).to(hidden.dtype) * delta
        if self.positions == "all" or (self.positions == "prompt" and self._prefill):
            return hidden + delta
        if self.positions == "prompt":
            return None
        if not self._prefill:  # response mode, decode step: every new position is a response position
            return hidden + delta
        steered = hidden.clone()
        steered[:, -1, :] += delta
        return steered


def steer(lm, vector, layer: int, coefficient: float = 1.0, positions: str = "response") -> Steering:
    """Shortcut for one vector: ``with steer(lm, v, layer=12, coefficient=4): ...``."""
    steering = Steering(lm, positions=positions)
    steering.add(vector, layer, coefficient)
    return steering
