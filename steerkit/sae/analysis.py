"""Feature analysis of a concept with a sparse autoencoder (seed 001's SAE decomposition).

Definitions (``z(x) = sae.transform(x)``, ``F`` features, activations at the SAE's site):

- **diffusion** of a vector ``v``: the share of the ``F`` features active (``z > 0``) on ``v``
  itself, ``|{f : z(v)_f > 0}| / F``. For a concept, ``v`` is its contrastive (PV) vector
  ``mean(pos) - mean(neg)`` (:func:`concept_diffusion`); seed 001 reports 47-59 %.
- **contrastive input activation** of feature ``f``: ``mean z(pos)_f - mean z(neg)_f`` over the
  concept's labelled samples; the top-k by it are the concept's own features.
- **output influence** of feature ``f``: the logits of its decoder row read through the final
  norm and the unembedding (:func:`steerkit.lm.unembed.unembed`), centred per feature (minus
  their mean over the vocabulary); the score is the mean centred logit of ``target_tokens``, or
  the largest centred logit when no targets are given.
- **overlap** of two top-k sets: the size of their intersection (seed 001: 0-4 of 20).
"""

from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm

from steerkit.estimators.pv import class_mean_difference
from steerkit.estimators.sae_feature import contrastive_feature_activation, top_indices
from steerkit.lm.unembed import unembed


def _check_k(k, n_features: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n_features:
        raise ValueError(f"k must be an integer in 1..{n_features} (the SAE's features), got {k!r}")
    return int(k)


def diffusion(sae, vector) -> float:
    """Share of the SAE's features active on ``vector`` (d,): ``mean(z(vector) > 0)``, in [0, 1]."""
    vector = np.asarray(vector, dtype=np.float32)
    if vector.shape != (sae.W_dec_.shape[1],):
        raise ValueError(f"vector has shape {vector.shape} but the SAE reads ({sae.W_dec_.shape[1]},) activations: "
                         "pass one vector at the SAE's site")
    return float((np.asarray(sae.transform(vector[None]))[0] > 0).mean())


def sae_layer_samples(sae, activations, *, position: str = "response_avg", layer: int | None = None):
    """``(X_positive, X_negative)`` of an ActivationSet at the SAE's layer, each ``(n, d)``.

    ``layer`` defaults to ``sae.site_.layer``; the set's component must be the SAE site's.
    """
    site = getattr(sae, "site_", None)
    if layer is None:
        if site is None:
            raise ValueError("the SAE records no site (sae.site_ is None): pass layer=L")
        layer = site.layer
    if site is not None and site.component != activations.component:
        raise ValueError(f"the SAE reads {site.component} activations but the ActivationSet holds "
                         f"{activations.component}: extract the concept at the SAE's site")
    if not 0 <= layer < activations.n_layers:
        raise ValueError(f"layer {layer} is out of range for the ActivationSet (0..{activations.n_layers - 1})")
    X = activations.X(position, layer)
    positive = activations.y == 1
    return X[positive], X[~positive]


def concept_diffusion(sae, activations, *, position: str = "response_avg", layer: int | None = None) -> float:
    """:func:`diffusion` of the concept's contrastive vector ``mean(pos) - mean(neg)`` at the SAE's layer."""
    positive, negative = sae_layer_samples(sae, activations, position=position, layer=layer)
    return diffusion(sae, class_mean_difference(positive, negative))


def top_features_by_activation(sae, activations, k: int = 20, *, position: str = "response_avg",
                               layer: int | None = None) -> np.ndarray:
    """The ``k`` features with the highest contrastive input activation, best first, ``(k,)`` ints."""
    k = _check_k(k, sae.W_dec_.shape[0])
    positive, negative = sae_layer_samples(sae, activations, position=position, layer=layer)
    return top_indices(contrastive_feature_activation(sae, positive, negative), k)


def feature_logits(sae, lm, features=None, *, norm_path: str | None = None) -> np.ndarray:
    """Vocabulary logits of decoder rows ``W_dec_[features]`` through the final norm and unembedding.

    Returns ``(n_features, V)`` float32 (all features when ``features`` is None).
    """
    rows = np.asarray(sae.W_dec_, dtype=np.float32)
    return unembed(lm, rows if features is None else rows[np.asarray(features)], norm_path=norm_path)


def feature_influence(sae, lm, target_tokens=None, *, batch_size: int = 256, norm_path: str | None = None,
                      progress: bool = True) -> np.ndarray:
    """Output influence of every feature (see the module docs), ``(F,)`` float64 in logit units.

    ``target_tokens``: token ids whose mean centred logit is the score (None: the largest
    centred logit). Features are unembedded ``batch_size`` at a time (``F x V`` logits would
    not fit in memory for real models).
    """
    n_features = sae.W_dec_.shape[0]
    targets = None if target_tokens is None else np.asarray(target_tokens, dtype=np.int64).reshape(-1)
    if targets is not None and (targets.size == 0 or targets.min() < 0 or targets.max() >= len(lm.tokenizer)):
        raise ValueError(f"target_tokens must be non-empty token ids in 0..{len(lm.tokenizer) - 1}, got {target_tokens!r}")
    scores = np.empty(n_features)
    for start in tqdm(range(0, n_features, batch_size), desc="feature influence", disable=not progress):
        features = np.arange(start, min(start + batch_size, n_features))
        logits = feature_logits(sae, lm, features, norm_path=norm_path).astype(np.float64)
        centred = logits - logits.mean(axis=1, keepdims=True)
        scores[features] = centred.max(axis=1) if targets is None else centred[:, targets].mean(axis=1)
    return scores


def logit_lens_tokens(sae, lm, features, n_tokens: int = 5, *, norm_path: str | None = None) -> list[list[str]]:
    """The ``n_tokens`` tokens each feature's decoder row raises most, one list per feature."""
    logits = feature_logits(sae, lm, features, norm_path=norm_path)
    order = np.argsort(-logits, axis=1, kind="stable")[:, :n_tokens]
    return [[lm.tokenizer.decode([int(token)]) for token in row] for row in order]


def top_features_by_influence(sae, lm, k: int = 20, target_tokens=None, *, n_tokens: int = 5,
                              norm_path: str | None = None, progress: bool = True) -> list[dict]:
    """The ``k`` features with the highest output influence, best first.

    Returns one ``{"feature": int, "influence": float, "tokens": [str, ...]}`` per feature,
    ``tokens`` being the logit-lens tokens its decoder row raises most.
    """
    k = _check_k(k, sae.W_dec_.shape[0])
    scores = feature_influence(sae, lm, target_tokens, norm_path=norm_path, progress=progress)
    features = top_indices(scores, k)
    tokens = logit_lens_tokens(sae, lm, features, n_tokens, norm_path=norm_path)
    return [{"feature": int(f), "influence": float(scores[f]), "tokens": t} for f, t in zip(features, tokens)]


def concept_target_tokens(lm, vector, k: int = 20, *, norm_path: str | None = None) -> np.ndarray:
    """Token ids a concept's vector ``(d,)`` raises most under the logit lens, ``(k,)``: default
    targets of :func:`feature_influence` for that concept."""
    return top_indices(unembed(lm, np.asarray(vector, dtype=np.float32), norm_path=norm_path), k)


def feature_overlap(a, b) -> int:
    """Number of features in both top-k sets ``a`` and ``b`` (seed 001's "top-20 overlap")."""
    return len(set(np.asarray(a).reshape(-1).tolist()) & set(np.asarray(b).reshape(-1).tolist()))
