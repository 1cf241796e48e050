"""Quality of a fitted :class:`~steerkit.sae.autoencoder.SparseAutoencoder`: reconstruction,
sparsity, and the next-token loss with the reconstruction spliced into the model."""

from __future__ import annotations

import numpy as np
import torch

from steerkit.lm.hooks import check_site, intervene
from steerkit.lm.interventions import Intervention
from steerkit.lm.scoring import AnswerBatch, answer_log_probs


def sae_metrics(sae, X) -> dict:
    """``{"mse", "explained_variance", "l0", "dead_fraction"}`` of ``sae`` on activations ``X`` ``(n, d)``.

    mse: squared error per token summed over ``d`` (activation units squared), averaged over tokens;
    explained_variance: ``1 - sum ||x - x_hat||^2 / sum ||x - mean(x)||^2``; l0: mean number of
    active features per token; dead_fraction: share of features active on no row of ``X``.
    """
    Z = sae.transform(X)
    X = np.asarray(X, dtype=np.float32)
    error = ((X - sae.inverse_transform(Z)).astype(np.float64) ** 2).sum(1)
    total = ((X - X.mean(0)).astype(np.float64) ** 2).sum()
    active = Z > 0
    return {"mse": float(error.mean()), "explained_variance": float(1 - error.sum() / total),
            "l0": float(active.sum(1).mean()), "dead_fraction": float(1 - active.any(0).mean())}


class Splice(Intervention):
    """Replace the activations at ``site`` with ``sae``'s reconstruction (``zero=True``: with zeros)."""

    def __init__(self, sae, *, site, zero: bool = False):
        super().__init__(site=site, positions="all")
        self.sae = sae
        self.zero = zero

    def delta(self, hidden: torch.Tensor) -> torch.Tensor:
        if self.zero:
            return -hidden
        return self.sae.decode_torch(self.sae.encode_torch(hidden.float())).to(hidden.dtype) - hidden


def spliced_loss(lm, sae, site, texts: list[str]) -> dict:
    """Mean next-token loss (nats per predicted token, float32) of ``texts``: clean, with ``sae``'s
    reconstruction spliced in at ``site`` on every position, and with the site zero-ablated."""
    site = check_site(lm, site)
    encoded = [lm.tokenizer(text, add_special_tokens=lm.adds_special_tokens)["input_ids"] for text in texts]
    encoded = [ids for ids in encoded if len(ids) >= 2]
    if not encoded:
        raise ValueError("spliced_loss needs texts of at least 2 tokens")
    batch = AnswerBatch.of([ids[:1] for ids in encoded], [ids[1:] for ids in encoded], lm.tokenizer.pad_token_id)
    n_tokens = float(batch.n_answer_tokens.sum())
    losses = {}
    for name, interventions in (("clean_nats", []), ("spliced_nats", [Splice(sae, site=site)]),
                                ("zero_ablated_nats", [Splice(sae, site=site, zero=True)])):
        with torch.inference_mode(), intervene(lm, interventions):
            losses[name] = float(-answer_log_probs(lm, batch).sum() / n_tokens)
    return losses
