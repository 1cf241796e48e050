"""Persona-vector (mean difference) steering."""

from __future__ import annotations

import numpy as np

from ._base import BaseSteerer


def mean_difference(differences: np.ndarray) -> np.ndarray:
    """Mean of the difference vectors.

    Parameters
    ----------
    differences : ndarray of shape (n_contrasts, d) or (n_contrasts, n_layers, d)

    Returns
    -------
    ndarray of shape (d,) or (n_layers, d), in activation units
    """
    return differences.mean(axis=0)


def class_mean_difference(X_positive: np.ndarray, X_negative: np.ndarray) -> np.ndarray:
    """``mean(X_positive) - mean(X_negative)``; needs no pairing.

    Parameters
    ----------
    X_positive : ndarray of shape (n_positive, d) or (n_positive, n_layers, d)
    X_negative : ndarray of shape (n_negative, d) or (n_negative, n_layers, d)

    Returns
    -------
    ndarray of shape (d,) or (n_layers, d), in activation units
    """
    return X_positive.mean(axis=0) - X_negative.mean(axis=0)


class PVSteerer(BaseSteerer):
    """Persona-vector steerer: the mean difference between the two classes.

    ``vector_ = mean_i d_i`` over the contrast differences
    ``d_i = h_pos - h_neg``, computed per layer. For labelled samples without
    ``contrast_ids`` it is ``mean(pos) - mean(neg)`` over all samples, which
    equals the mean of order-matched differences when the classes are
    balanced and needs no pairing when they are not.

    Parameters
    ----------
    coefficient : float, default=1.0
        Steering strength: ``transform`` adds ``coefficient * vector_``.

    Attributes
    ----------
    vector_ : ndarray of shape (d,) or (n_layers, d)
        Mean difference, in activation units.
    direction_ : ndarray of shape (d,) or (n_layers, d)
        ``vector_`` normalised per layer (zero stays zero).
    n_features_in_ : int
        Width ``d`` of the activations.
    n_layers_ : int or None
        Number of layers for 3-D fits, else ``None``.
    n_contrasts_ : int
        Number of contrasts; ``min(n_positive, n_negative)`` for labelled
        samples without ``contrast_ids``.
    classes_ : ndarray of shape (2,)
        Labels seen in ``y`` (only when fitted with ``y``).

    See :class:`~steerkit.estimators.BaseSteerer` for the shared ``fit``,
    ``transform`` and ``decision_function`` contract.
    """

    def _fit_differences(self, differences, groups):
        return mean_difference(differences)

    def _fit_unpaired(self, X, is_positive, instruction_ids):
        n_contrasts = int(min(is_positive.sum(), (~is_positive).sum()))
        return class_mean_difference(X[is_positive], X[~is_positive]), n_contrasts
