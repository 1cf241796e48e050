"""A ReLU SAE with chosen weights (no training): an orthonormal dictionary of ``F`` rows in ``d``."""

from __future__ import annotations

import numpy as np
from scipy.linalg import hadamard

from steerkit.lm import Site
from steerkit.sae.autoencoder import SparseAutoencoder


def orthonormal_rows(n_features: int, d: int, seed: int = 0) -> np.ndarray:
    """``(n_features, d)`` float32 rows of the normalised Hadamard matrix (``d`` a power of 2,
    ``n_features <= d``), in a seeded order: entries ``±1/sqrt(d)``, so their dot products are
    exactly 0 or 1 in floating point."""
    rows = np.random.default_rng(seed).permutation(d)[:n_features]
    return (hadamard(d)[rows] / np.sqrt(d)).astype(np.float32)


def hand_built_sae(n_features: int = 16, d: int = 64, *, layer: int = 2, b_enc=None, seed: int = 0) -> SparseAutoencoder:
    """ReLU SAE with ``W_dec`` orthonormal rows, ``W_enc = W_dec.T``, ``b_dec = 0``, ``b_enc``
    (default 0): feature ``f`` of ``x`` is ``relu(x · W_dec[f] + b_enc[f])``."""
    sae = SparseAutoencoder(n_features, kind="relu", progress=False)
    sae.W_dec_ = orthonormal_rows(n_features, d, seed)
    sae.W_enc_ = np.ascontiguousarray(sae.W_dec_.T)
    sae.b_enc_ = np.zeros(n_features, np.float32) if b_enc is None else np.asarray(b_enc, np.float32)
    sae.b_dec_ = np.zeros(d, np.float32)
    sae.n_features_in_, sae.n_features_ = d, n_features
    sae.site_, sae.model_name_ = Site(layer), None
    return sae
