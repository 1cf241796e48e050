"""Feature-space steering: set chosen SAE features to fixed values inside the forward pass."""

from __future__ import annotations

import numpy as np
import torch

from steerkit._values import check_finite
from steerkit.lm.interventions import Intervention


class ClampFeatures(Intervention):
    """``h + decode(z') - decode(z)`` with ``z = encode(h)`` and ``z'`` equal to ``z`` except
    ``z'[features] = values``.

    Only the change of the reconstruction is added, so what the SAE fails to reconstruct
    (``h - decode(z)``) is kept and clamping a feature to its current value is an exact no-op.

    Parameters
    ----------
    sae : a fitted :class:`~steerkit.sae.SparseAutoencoder` (``encode_torch``/``decode_torch``).
    features : int or sequence of ints, feature indices in ``0..F-1``.
    values : float or sequence of floats (one per feature), feature-activation units.
    site : where the SAE reads; ``None`` uses ``sae.site_``.
    positions : position policy (see :mod:`steerkit.lm.interventions`), default ``"all"``.
    """

    def __init__(self, sae, features, values, *, site=None, positions="all"):
        site = getattr(sae, "site_", None) if site is None else site
        if site is None:
            raise ValueError("the SAE records no site (sae.site_ is None): pass ClampFeatures(..., site=Site(layer))")
        super().__init__(site=site, positions=positions)
        n_features = sae.W_dec_.shape[0]
        indices = np.asarray(features).reshape(-1)
        if indices.size == 0 or indices.dtype.kind not in "iu" or indices.min() < 0 or indices.max() >= n_features:
            raise ValueError(f"features must be feature indices in 0..{n_features - 1}, got {features!r}")
        clamped = check_finite(np.broadcast_to(np.asarray(values, dtype=np.float32), indices.shape).copy(),
                               "values", "pass one finite value per feature (or one for all)")
        self.sae = sae
        self.width = sae.W_dec_.shape[1]
        self.register_buffer("features", torch.as_tensor(indices, dtype=torch.long))
        self.register_buffer("values", torch.as_tensor(clamped))

    def delta(self, hidden: torch.Tensor) -> torch.Tensor:
        z = self.sae.encode_torch(hidden)
        clamped = z.clone()
        clamped[..., self.features] = self.values.to(z.dtype)
        return self.sae.decode_torch(clamped) - self.sae.decode_torch(z)
