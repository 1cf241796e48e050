"""``Steering`` and ``steer``: add vectors to the residual stream (or any site) for all rows alike.

Thin users of :class:`steerkit.lm.hooks.Intervening` with
:class:`~steerkit.lm.interventions.AddVector`; the hook plumbing itself lives in
:mod:`steerkit.lm.hooks` (re-exported here for existing imports).
"""

from __future__ import annotations

import contextlib
import itertools
from typing import Iterator

import torch

from steerkit.lm.hooks import Intervening, add_residual_hook, add_site_hook, check_layer, check_site, record_activations
from steerkit.lm.interventions import AddVector, check_positions

POSITION_MODES = ("all", "prompt", "response")

__all__ = ["POSITION_MODES", "Steering", "add_residual_hook", "add_site_hook", "check_layer", "record_activations",
           "steer"]


class Steering:
    """Context manager adding ``coefficient * vector`` at a layer (or :class:`~steerkit.lm.Site`).

    Several vectors may be installed at once (same or different sites); their coefficients
    can be changed while installed with :meth:`set_coefficient`. All hooks are removed on exit,
    also when the body raises.

    ``positions`` chooses the token positions that are steered during generation:

    - ``"all"``: every prompt and generated position;
    - ``"prompt"``: the prompt positions only (the prefill pass);
    - ``"response"``: the positions whose next-token prediction is a response token, i.e. the
      last prompt position and every generated position (as in PersonaVectors/GRACE);
    - any other policy of :mod:`steerkit.lm.interventions` (``"first"``, ``"last"``, a
      ``Window``).

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

    def __init__(self, lm, *, positions="response"):
        self.lm = lm
        self.positions = check_positions(positions)
        self._installed = Intervening(lm)
        self._vectors: dict[str, AddVector] = {}
        self._names = itertools.count()

    def add(self, vector, layer, coefficient: float = 1.0, name: str | None = None) -> str:
        """Add ``coefficient * vector`` (shape ``(d,)``) at ``layer`` (an int or a Site); return
        its name.

        A vector with NaN or infinite values, or a coefficient that is not finite or beyond
        ``±steerkit._values.MAX_ABS_COEFFICIENT``, is refused (``ValueError``).
        """
        site = check_site(self.lm, layer)
        intervention = AddVector(vector, site=site, coefficient=coefficient, positions=self.positions)
        if intervention.width != self.lm.hidden_size:
            raise ValueError(
                f"steering vector has {intervention.width} values but {self.lm.name} has hidden size "
                f"{self.lm.hidden_size}"
            )
        name = name if name is not None else f"vector{next(self._names)}"
        if name in self._vectors:
            raise ValueError(f"a steering vector named {name!r} is already installed")
        self._vectors[name] = self._installed.add(intervention)
        return name

    def set_coefficient(self, name: str, coefficient: float) -> None:
        """Change the strength of the installed vector ``name`` (takes effect immediately)."""
        self[name].set_coefficient(coefficient)

    def __getitem__(self, name: str) -> AddVector:
        """The installed :class:`~steerkit.lm.interventions.AddVector` called ``name``."""
        if name not in self._vectors:
            raise KeyError(f"no steering vector named {name!r}; installed: {sorted(self._vectors)}")
        return self._vectors[name]

    def remove(self, name: str) -> None:
        """Stop adding the vector ``name``."""
        self._installed.remove(self._vectors.pop(name))

    @property
    def names(self) -> list[str]:
        return list(self._vectors)

    @contextlib.contextmanager
    def token_mask(self, mask) -> Iterator[None]:
        """Steer exactly the positions where ``mask`` (bool, ``(B, T)``) is True, for this block."""
        self._installed.token_mask = torch.as_tensor(mask, dtype=torch.bool, device=self.lm.device)
        try:
            yield
        finally:
            self._installed.token_mask = None

    def __enter__(self) -> "Steering":
        self._installed.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._installed.__exit__(*exc)


def steer(lm, vector, layer, coefficient: float = 1.0, positions="response") -> Steering:
    """Shortcut for one vector: ``with steer(lm, v, layer=12, coefficient=4): ...``."""
    steering = Steering(lm, positions=positions)
    steering.add(vector, layer, coefficient)
    return steering
