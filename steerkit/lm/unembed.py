"""The final norm and the unembedding of any causal LM, found by one general rule.

Rule: the final norm is the normalisation module (a ``LayerNorm``/``RMSNorm`` or any module
whose class name ends in ``Norm``) registered after the decoder blocks and outside them; when
several match (a multimodal model), the one inside ``model.get_decoder()`` wins. The
unembedding is ``model.get_output_embeddings()``. No model names are special-cased.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from steerkit.lm.blocks import _inside, find_decoder_blocks


class FinalNormNotFoundError(ValueError):
    """Raised when the final norm of a model cannot be located."""


def _is_norm(module: nn.Module) -> bool:
    return isinstance(module, (nn.LayerNorm, nn.RMSNorm)) or type(module).__name__.endswith("Norm")


def _hint(model: nn.Module, detail: str) -> FinalNormNotFoundError:
    return FinalNormNotFoundError(
        f"Could not find the final norm of {type(model).__name__}: {detail}. Pass the dotted path of the norm "
        "applied before the unembedding, e.g. find_final_norm(model, norm_path='model.norm')"
    )


def find_final_norm(model: nn.Module, norm_path: str | None = None, *,
                    block_path: str | None = None) -> tuple[str, nn.Module]:
    """Return ``(dotted_path, module)`` of the norm applied to the last block's output.

    Parameters
    ----------
    model : a transformers ``PreTrainedModel`` (or any ``nn.Module``).
    norm_path : explicit dotted path (``"model.norm"``, ``"transformer.ln_f"``); overrides the
        search.
    block_path : the decoder blocks' path when the rule of :mod:`steerkit.lm.blocks` needs it.
    """
    if norm_path is not None:
        try:
            return norm_path, model.get_submodule(norm_path)
        except AttributeError as err:
            raise _hint(model, f"it has no submodule {norm_path!r}") from err
    blocks_path, _ = find_decoder_blocks(model, block_path)
    names = [name for name, _ in model.named_modules()]
    after = names[names.index(blocks_path) + 1:]
    candidates = [(name, model.get_submodule(name)) for name in after
                  if not name.startswith(blocks_path + ".") and _is_norm(model.get_submodule(name))]
    if len(candidates) > 1 and hasattr(model, "get_decoder"):
        decoder = model.get_decoder()
        candidates = [(p, m) for p, m in candidates if _inside(model, decoder, p)] or candidates
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise _hint(model, f"no normalisation module follows its decoder blocks {blocks_path!r}")
    raise _hint(model, f"several norms follow its decoder blocks ({', '.join(repr(p) for p, _ in candidates)})")


@torch.inference_mode()
def unembed(lm, vectors, *, norm_path: str | None = None) -> np.ndarray:
    """Vocabulary logits of residual-stream vectors: the final norm, then the output embedding.

    Parameters
    ----------
    lm : :class:`~steerkit.lm.LanguageModel`.
    vectors : ``(n, d)`` or ``(d,)`` array or tensor in activation units (``d = lm.hidden_size``).
    norm_path : the final norm's dotted path, when :func:`find_final_norm` cannot find it.

    Returns
    -------
    ``(n, V)`` or ``(V,)`` float32 logits, what the model would predict from a last block that
    output ``vectors`` (a monotone logit soft-capping, as in Gemma 2, is not applied).
    """
    _, norm = find_final_norm(lm.model, norm_path, block_path=lm.block_path)
    hidden = vectors.detach().float().cpu() if isinstance(vectors, torch.Tensor) else torch.as_tensor(
        np.asarray(vectors, dtype=np.float32))
    if hidden.ndim not in (1, 2) or hidden.shape[-1] != lm.hidden_size:
        raise ValueError(f"vectors have shape {tuple(hidden.shape)} but {lm.name} needs (n, {lm.hidden_size}) or "
                         f"({lm.hidden_size},): pass residual-stream vectors of the model's hidden size")
    logits = lm.model.get_output_embeddings()(norm(hidden.to(device=lm.device, dtype=lm.dtype)))
    return logits.float().cpu().numpy()
