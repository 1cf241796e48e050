"""Sites: where activations are read or steered, and finding a block's attention and MLP.

A :class:`Site` is a layer and a component:

- ``"residual"``: layer ``l >= 1`` is the output of decoder block ``l`` (1-based); layer 0 is
  the embedding output (the input of block 1), the only component that exists at layer 0.
- ``"attn"``: the output of block ``l``'s attention sublayer before it is added to the
  residual stream.
- ``"mlp"``: the output of block ``l``'s MLP before it is added to the residual stream.

What ``"attn"``/``"mlp"`` mean per family: Llama, Qwen2, Phi-3 and SmolLM2 add the module
output to the residual stream directly; Gemma-3 normalises it first (``post_attention_layernorm``
/ ``post_feedforward_layernorm``), so the site is the module output *before* that norm; Phi and
GPT-NeoX run attention and MLP in parallel on the block input and add both outputs; GPT-2 adds
the output of ``attn`` / ``mlp`` (after their output projection and dropout).

Rule for finding the submodules (no model names are special-cased): among a block's direct
children that hold parameters and are not norms, the attention module is the one whose
attribute or class name contains ``attn`` or ``attention``, the MLP the one whose attribute or
class name contains ``mlp``, ``ffn`` or ``feed_forward``. When there is not exactly one of each,
the error names the block class and how to pass ``attn_path`` / ``mlp_path``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import nn

COMPONENTS = ("residual", "attn", "mlp")
_EXAMPLES = {"attn": "self_attn", "mlp": "mlp"}
_MARKERS = {"attn": ("attn", "attention"), "mlp": ("mlp", "ffn", "feed_forward", "feedforward")}


class SublayerNotFoundError(ValueError):
    """Raised when a block's attention or MLP submodule cannot be located."""


@dataclass(frozen=True)
class Site:
    """Where to read or steer: ``Site(layer, component="residual")`` (see the module docs).

    ``layer`` counts like everywhere in steerkit (0 = embedding output, ``l`` = block ``l``);
    ``component`` is ``"residual"``, ``"attn"`` or ``"mlp"``. Frozen and hashable.
    """

    layer: int
    component: str = "residual"

    def __post_init__(self):
        if isinstance(self.layer, bool) or not isinstance(self.layer, (int, np.integer)):
            raise TypeError(f"Site layer must be an integer, got {self.layer!r}")
        object.__setattr__(self, "layer", int(self.layer))
        if self.component not in COMPONENTS:
            raise ValueError(f"Site component must be one of {COMPONENTS}, got {self.component!r}")
        if self.layer < 0:
            raise ValueError(f"Site layer must be >= 0 (0 = embedding output), got {self.layer}")
        if self.layer == 0 and self.component != "residual":
            raise ValueError(
                f"Site(0, {self.component!r}) does not exist: layer 0 is the embedding output, use "
                f"Site(0) or a {self.component!r} site at layer 1 or above"
            )

    def __str__(self) -> str:
        return str(self.layer) if self.component == "residual" else f"{self.layer}.{self.component}"


def as_site(site) -> Site:
    """``site`` as a :class:`Site`; a plain integer means ``Site(layer)`` (the residual stream)."""
    return site if isinstance(site, Site) else Site(site)


def _matches(name: str, child: nn.Module, component: str) -> bool:
    label = f"{name} {type(child).__name__}".lower()
    has_parameters = next(child.parameters(), None) is not None
    return has_parameters and "norm" not in label and any(marker in label for marker in _MARKERS[component])


def find_sublayer_path(block: nn.Module, component: str, path: str | None = None) -> str:
    """Dotted path, relative to ``block``, of its ``"attn"`` or ``"mlp"`` submodule.

    ``path`` (e.g. ``"self_attn"``) overrides the rule of the module docs and is checked.
    """
    option = f"{component}_path"
    if path is not None:
        try:
            block.get_submodule(path)
        except AttributeError:
            raise SublayerNotFoundError(
                f"{type(block).__name__} has no submodule {path!r}: fix {option}= (a dotted path "
                f"inside one decoder block, one of {[n for n, _ in block.named_children()]})"
            ) from None
        return path
    found = [name for name, child in block.named_children() if _matches(name, child, component)]
    if len(found) == 1:
        return found[0]
    detail = "no child module" if not found else f"several child modules ({', '.join(found)})"
    raise SublayerNotFoundError(
        f"Could not find the {component} submodule of {type(block).__name__}: {detail} match the rule; "
        f"pass its path inside the block, e.g. load_model(..., {option}={_EXAMPLES[component]!r}) or "
        f"LanguageModel(..., {option}=...)"
    )
