"""Logit lens of a vector: the tokens its unembedding ``unembed(final_norm(v))`` raises and lowers most."""

from __future__ import annotations

import numpy as np

from steerkit.lm.unembed import unembed


def logit_lens(lm, vector, k: int = 10, *, norm_path: str | None = None) -> dict[str, list[tuple[str, float]]]:
    """Top and bottom ``k`` tokens of ``vector`` read through the final norm and unembedding.

    Parameters
    ----------
    lm : :class:`~steerkit.lm.LanguageModel`.
    vector : ``(d,)`` residual-stream vector (a steering vector, or an activation), activation units.
    k : tokens in each list.
    norm_path : the final norm's path when the rule of :mod:`steerkit.lm.unembed` cannot find it.

    Returns
    -------
    ``{"top": [(token, logit), ...], "bottom": [...]}``: decoded tokens with their logits
    (the model's logit units), ``top`` from the highest logit down, ``bottom`` from the lowest
    up.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer (tokens per list), got {k!r}")
    if np.ndim(vector) != 1:
        raise ValueError(f"vector must have shape ({lm.hidden_size},), got {np.shape(vector)}: pass one vector")
    logits = unembed(lm, vector, norm_path=norm_path)
    order = np.argsort(-logits, kind="stable")

    def tokens(ids):
        return [(lm.tokenizer.decode([int(i)]), float(logits[i])) for i in ids]

    return {"top": tokens(order[:k]), "bottom": tokens(order[::-1][:k])}
