"""Steering along the mean of unit-normalised differences."""

from __future__ import annotations

import numpy as np

from ._base import BaseSteerer, unit_vectors


def unit_mean_vector(differences: np.ndarray) -> np.ndarray:
    """Direction of the mean unit difference, scaled to the mean difference's norm.

    ``u = mean_i d_i / ||d_i||`` skipping zero differences (only the direction
    of ``u`` is used, so skipping them is the same as counting them as zero),
    then ``u / ||u|| * ||mean_i d_i||`` per layer.

    Parameters
    ----------
    differences : ndarray of shape (n_contrasts, d) or (n_contrasts, n_layers, d)

    Returns
    -------
    ndarray of shape (d,) or (n_layers, d), in activation units
        Zero where the unit differences cancel out exactly.
    """
    direction = unit_vectors(unit_vectors(differences).sum(axis=0))
    pv_norm = np.linalg.norm(differences.mean(axis=0), axis=-1, keepdims=True)
    return direction * pv_norm


class UnitMeanSteerer(BaseSteerer):
    """Steer along the mean of unit-normalised contrast differences.

    Every contrast votes with equal weight for a direction, whatever the
    magnitude of its difference; the vector is then rescaled to the norm of
    the persona vector (mean difference) so that coefficients mean the same as
    for :class:`PVSteerer`. Computed per layer.

    Parameters
    ----------
    coefficient : float, default=1.0
        Steering strength: ``transform`` adds ``coefficient * vector_``.

    Attributes
    ----------
    vector_ : ndarray of shape (d,) or (n_layers, d)
        ``u / ||u|| * ||mean_i d_i||`` with ``u`` the mean unit difference,
        in activation units.
    direction_ : ndarray of shape (d,) or (n_layers, d)
        ``vector_`` normalised per layer (zero stays zero).
    n_features_in_ : int
        Width ``d`` of the activations.
    n_layers_ : int or None
        Number of layers for 3-D fits, else ``None``.
    n_contrasts_ : int
        Number of contrasts (zero differences included).
    classes_ : ndarray of shape (2,)
        Labels seen in ``y`` (only when fitted with ``y``).

    See :class:`~steerkit.estimators.BaseSteerer` for the shared ``fit``,
    ``transform`` and ``decision_function`` contract.
    """

    def _fit_differences(self, differences, groups):
        return unit_mean_vector(differences)
