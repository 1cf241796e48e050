"""Composition: several steering vectors added at once at one site (the seed's "addition").

Adding ``w_1 v_1`` and ``w_2 v_2`` at the same site is, by linearity, adding their weighted sum:
:func:`compose` builds that one :class:`~steerkit.lm.interventions.AddVector`. Vectors for
different sites are simply several ``AddVector`` s in one row's list. The alternative that
switches vectors during a generation is :mod:`steerkit.steering.schedule`.
"""

from __future__ import annotations

import numpy as np

from steerkit._values import check_coefficient, check_finite
from steerkit.lm.interventions import AddVector


def compose(vectors, weights, *, site, positions="response") -> AddVector:
    """One ``AddVector`` adding ``sum_i weights[i] * vectors[i]`` at ``site`` (coefficient 1).

    ``vectors``: ``(k, d)`` (or a list of ``k`` vectors of shape ``(d,)``), activation units;
    ``weights``: ``k`` finite numbers. The composed vector's strength is changed afterwards
    with its ``coefficient`` like any ``AddVector``.
    """
    array = check_finite(np.asarray(vectors, dtype=np.float64), "composed vectors", "pass finite vectors")
    if array.ndim != 2 or array.shape[0] == 0:
        raise ValueError(f"compose needs vectors of shape (k, d) with k >= 1, got shape {array.shape}")
    weights = [check_coefficient(w, "composition weight") for w in np.ravel(weights).tolist()]
    if len(weights) != array.shape[0]:
        raise ValueError(f"compose got {array.shape[0]} vectors but {len(weights)} weights: pass one weight per vector")
    return AddVector(np.asarray(weights) @ array, site=site, positions=positions)
