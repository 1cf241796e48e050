"""Finding the decoder blocks of any causal LM by one general rule.

Rule: the decoder blocks are the ``nn.ModuleList`` of same-class modules whose length equals
the config's number of hidden layers. When several lists match (a multimodal model with a
vision tower of the same depth), the one inside ``model.get_decoder()`` wins. No model names
are special-cased; a model the rule cannot resolve gets an error naming its class and how to
pass ``block_path``.
"""

from __future__ import annotations

from torch import nn


class BlocksNotFoundError(ValueError):
    """Raised when the decoder blocks of a model cannot be located."""


_LAYER_COUNT_KEYS = ("num_hidden_layers", "n_layer", "num_layers", "n_layers")


def expected_layer_count(config) -> int | None:
    """Number of decoder blocks declared by a (possibly multimodal) transformers config."""
    if config is None:
        return None
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    for key in _LAYER_COUNT_KEYS:
        value = getattr(text_config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _homogeneous_lists(model: nn.Module) -> list[tuple[str, nn.ModuleList]]:
    found = []
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) > 0:
            if len({type(child) for child in module}) == 1:
                found.append((name, module))
    return found


def _inside(model: nn.Module, inner: nn.Module, path: str) -> bool:
    prefix = next((n for n, m in model.named_modules() if m is inner), None)
    return prefix is not None and (prefix == "" or path.startswith(prefix + "."))


def _hint(model: nn.Module, detail: str) -> BlocksNotFoundError:
    return BlocksNotFoundError(
        f"Could not find the decoder blocks of {type(model).__name__}: {detail}. "
        "Pass the dotted path of the nn.ModuleList that holds them, e.g. "
        "load_model(..., block_path='model.layers') or `--block-path model.layers` on the "
        "command line."
    )


def find_decoder_blocks(model: nn.Module, block_path: str | None = None) -> tuple[str, nn.ModuleList]:
    """Return ``(dotted_path, blocks)`` for the decoder blocks of ``model``.

    Parameters
    ----------
    model : a transformers ``PreTrainedModel`` (or any ``nn.Module``).
    block_path : explicit dotted path (``"model.layers"``, ``"transformer.h"``); overrides
        the search.
    """
    if block_path is not None:
        try:
            blocks = model.get_submodule(block_path)
        except AttributeError as err:
            raise _hint(model, f"it has no submodule {block_path!r}") from err
        if not isinstance(blocks, nn.ModuleList) or len(blocks) == 0:
            raise _hint(model, f"{block_path!r} is a {type(blocks).__name__}, not a non-empty nn.ModuleList")
        return block_path, blocks

    candidates = _homogeneous_lists(model)
    n_blocks = expected_layer_count(getattr(model, "config", None))
    if n_blocks is not None:
        candidates = [(p, m) for p, m in candidates if len(m) == n_blocks]
    elif candidates:
        longest = max(len(m) for _, m in candidates)
        candidates = [(p, m) for p, m in candidates if len(m) == longest]

    if len(candidates) > 1 and hasattr(model, "get_decoder"):
        decoder = model.get_decoder()
        inside = [(p, m) for p, m in candidates if _inside(model, decoder, p)]
        candidates = inside or candidates
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        expected = f"{n_blocks} blocks (from its config)" if n_blocks else "any blocks"
        raise _hint(model, f"no nn.ModuleList of identical modules holds {expected}")
    paths = ", ".join(repr(p) for p, _ in candidates)
    raise _hint(model, f"several module lists could be the decoder ({paths})")
