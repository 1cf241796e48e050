"""Steering along the instruction groups that agree with each other."""

from __future__ import annotations

import numbers
import warnings

import numpy as np
from sklearn.utils.validation import check_scalar

from ._base import BaseSteerer, as_layers, unit_vectors

EXHAUSTIVE_MAX_GROUPS = 16
"""Up to this many groups the agreeing set is found by exhaustive search."""


def group_statistics(
    layered: np.ndarray, group_index: np.ndarray, n_groups: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sum and count of the differences of each group.

    Parameters
    ----------
    layered : ndarray of shape (n_contrasts, n_layers, d)
    group_index : ndarray of shape (n_contrasts,), dtype int
        Group of each contrast, in ``range(n_groups)``.
    n_groups : int

    Returns
    -------
    sums : ndarray of shape (n_groups, n_layers, d)
    counts : ndarray of shape (n_groups,)
    """
    one_hot = (np.arange(n_groups)[:, None] == group_index).astype(layered.dtype)
    return np.tensordot(one_hot, layered, axes=1), one_hot.sum(axis=1)


def cosine_matrices(means: np.ndarray, *, undefined: float = 0.0) -> np.ndarray:
    """Cosine similarity between group means, per layer.

    The one implementation of the per-instruction-pair cosine matrix, also behind
    ``steerkit.diagnostics.pair_cosines``.

    Parameters
    ----------
    means : ndarray of shape (n_groups, n_layers, d)
        Group means (or sums: only their directions matter).
    undefined : float, default=0.0
        Value in the row and column of a zero mean, its diagonal entry included.

    Returns
    -------
    ndarray of shape (n_layers, n_groups, n_groups)
        Cosines, clipped to [-1, 1].
    """
    units = unit_vectors(means).transpose(1, 0, 2)
    cosines = np.clip(units @ units.transpose(0, 2, 1), -1.0, 1.0)
    zero = ~units.any(axis=-1)
    cosines[zero[:, :, None] | zero[:, None, :]] = undefined
    return cosines


def subset_members(n_groups: int) -> np.ndarray:
    """Membership table of all subsets of ``n_groups`` groups.

    Row ``code`` lists the subset whose bit ``n_groups - 1 - i`` is set for
    each member ``i``: among subsets of equal size, a larger code therefore
    means a lexicographically smaller (lower) list of group indices.

    Returns
    -------
    ndarray of shape (2 ** n_groups, n_groups), dtype bool
    """
    codes = np.arange(2**n_groups)[:, None]
    return ((codes >> np.arange(n_groups - 1, -1, -1)) & 1).astype(bool)


def most_central_group(cosines: np.ndarray) -> np.ndarray:
    """The group with the highest mean cosine to the others (lowest index on ties).

    Parameters
    ----------
    cosines : ndarray of shape (n_groups, n_groups)

    Returns
    -------
    ndarray of shape (1,), dtype int
    """
    n_groups = cosines.shape[0]
    if n_groups == 1:
        return np.zeros(1, dtype=np.intp)
    to_others = (cosines.sum(axis=1) - np.diag(cosines)) / (n_groups - 1)
    return np.array([np.argmax(to_others)])


def exhaustive_selection(
    cosines: np.ndarray, threshold: float, members: np.ndarray
) -> np.ndarray:
    """Largest set of groups whose pairwise cosines all exceed ``threshold``.

    Ties are broken by the highest mean pairwise cosine, then by the lowest
    group indices. Without any agreeing pair, :func:`most_central_group`.

    Parameters
    ----------
    cosines : ndarray of shape (n_groups, n_groups)
    threshold : float
    members : ndarray of shape (2 ** n_groups, n_groups), dtype bool
        :func:`subset_members` of ``n_groups``.

    Returns
    -------
    ndarray of shape (n_selected,), dtype int
        Sorted indices of the selected groups.
    """
    off_diagonal = ~np.eye(cosines.shape[0], dtype=bool)
    disagree = ((cosines <= threshold) & off_diagonal).astype(np.int64)
    weights = members.astype(np.int64)
    agreeing = ~((weights @ disagree) * weights).any(axis=1)
    sizes = weights.sum(axis=1)
    best_size = sizes[agreeing].max()
    if best_size < 2:
        return most_central_group(cosines)
    candidates = np.flatnonzero(agreeing & (sizes == best_size))
    candidate_weights = weights[candidates].astype(cosines.dtype)
    pair_cosines = np.where(off_diagonal, cosines, 0)
    scores = ((candidate_weights @ pair_cosines) * candidate_weights).sum(axis=1)
    winners = candidates[scores == scores.max()]
    return np.flatnonzero(members[winners.max()])


def greedy_selection(cosines: np.ndarray, threshold: float) -> np.ndarray:
    """Greedy approximation of :func:`exhaustive_selection` for many groups.

    Starts from the most similar agreeing pair, then repeatedly adds the group
    that agrees with every selected group and has the highest mean cosine to
    them. Without any agreeing pair, :func:`most_central_group`.

    Parameters
    ----------
    cosines : ndarray of shape (n_groups, n_groups)
    threshold : float

    Returns
    -------
    ndarray of shape (n_selected,), dtype int
        Sorted indices of the selected groups.
    """
    agree = (cosines > threshold) & ~np.eye(cosines.shape[0], dtype=bool)
    if not agree.any():
        return most_central_group(cosines)
    first, second = np.unravel_index(
        np.argmax(np.where(agree, cosines, -np.inf)), cosines.shape
    )
    selected = np.zeros(cosines.shape[0], dtype=bool)
    selected[[first, second]] = True
    candidates = agree[selected].all(axis=0) & ~selected
    while candidates.any():
        affinity = np.where(candidates, cosines[selected].mean(axis=0), -np.inf)
        selected[np.argmax(affinity)] = True
        candidates = agree[selected].all(axis=0) & ~selected
    return np.flatnonzero(selected)


def select_groups(cosines: np.ndarray, threshold: float) -> np.ndarray:
    """Selection mask of the agreeing groups, per layer.

    Exhaustive search for at most :data:`EXHAUSTIVE_MAX_GROUPS` groups,
    greedy approximation above.

    Parameters
    ----------
    cosines : ndarray of shape (n_layers, n_groups, n_groups)
    threshold : float

    Returns
    -------
    ndarray of shape (n_layers, n_groups), dtype bool
    """
    n_layers, n_groups, _ = cosines.shape
    masks = np.zeros((n_layers, n_groups), dtype=bool)
    if n_groups <= EXHAUSTIVE_MAX_GROUPS:
        members = subset_members(n_groups)
        for layer, layer_cosines in enumerate(cosines):
            masks[layer, exhaustive_selection(layer_cosines, threshold, members)] = True
    else:
        for layer, layer_cosines in enumerate(cosines):
            masks[layer, greedy_selection(layer_cosines, threshold)] = True
    return masks


def selected_mean(sums: np.ndarray, counts: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Mean of the differences of all contrasts in the selected groups, per layer.

    Parameters
    ----------
    sums : ndarray of shape (n_groups, n_layers, d)
    counts : ndarray of shape (n_groups,)
    masks : ndarray of shape (n_layers, n_groups), dtype bool

    Returns
    -------
    ndarray of shape (n_layers, d), in activation units
    """
    weights = masks.astype(sums.dtype)
    totals = np.einsum("lg,gld->ld", weights, sums)
    return totals / (weights @ counts)[:, None]


class ClusterSteerer(BaseSteerer):
    """Steer along the mean difference of the instruction groups that agree.

    Contrasts are grouped by ``instruction_ids`` (the instruction pair that
    produced them). Per layer, each group's mean difference ``m_g`` is
    computed and the cosine matrix ``C`` between the ``m_g``; the selected
    set ``S`` is the largest set of groups whose pairwise cosines all exceed
    ``agreement_threshold``, ties broken by the highest mean pairwise cosine
    within ``S``, then by the lowest group indices. The search is exhaustive
    over subsets for up to 16 groups; above that a greedy approximation is
    used (start from the most similar agreeing pair, repeatedly add the group
    that agrees with all selected groups and is most similar to them on
    average), which may miss the largest set. If no two groups agree, ``S``
    is the single group with the highest mean cosine to the others.
    ``vector_`` is the mean of the differences of all contrasts in ``S``,
    rescaled by default to the norm of the mean over *all* contrasts (the PV
    norm, as :class:`UnitMeanSteerer` does), so one coefficient means the
    same strength for every construction; a single selected group can
    otherwise be several times longer than PV.

    Without ``instruction_ids`` all differences form one group (labelled
    ``0``), so the result equals :class:`PVSteerer`'s for the same contrasts;
    a ``UserWarning`` says so.

    Parameters
    ----------
    coefficient : float, default=1.0
        Steering strength: ``transform`` adds ``coefficient * vector_``.
    agreement_threshold : float in [-1, 1], default=0.7
        Groups agree when the cosine of their mean differences exceeds it.
    scale : {"pv", "mean"}, default="pv"
        ``"pv"``: rescale to the PV norm; ``"mean"``: keep the raw mean of
        the selected groups' differences (GRACE's construction as written).

    Attributes
    ----------
    vector_ : ndarray of shape (d,) or (n_layers, d)
        Mean difference over the selected groups (norm per ``scale``), in
        activation units.
    direction_ : ndarray of shape (d,) or (n_layers, d)
        ``vector_`` normalised per layer (zero stays zero).
    groups_ : ndarray of shape (n_groups,)
        Sorted unique group labels.
    selected_groups_ : list of labels, or list (per layer) of lists of labels
        Labels of the selected groups (per layer for 3-D fits), sorted.
    group_cosines_ : ndarray of shape (n_groups, n_groups) or (n_layers, n_groups, n_groups)
        Cosines between group mean differences, in the order of ``groups_``.
    n_features_in_ : int
        Width ``d`` of the activations.
    n_layers_ : int or None
        Number of layers for 3-D fits, else ``None``.
    n_contrasts_ : int
        Number of contrasts (in all groups).
    classes_ : ndarray of shape (2,)
        Labels seen in ``y`` (only when fitted with ``y``).

    See :class:`~steerkit.estimators.BaseSteerer` for the shared ``fit``,
    ``transform`` and ``decision_function`` contract.
    """

    def __init__(self, coefficient: float = 1.0, *, agreement_threshold: float = 0.7, scale: str = "pv"):
        self.coefficient = coefficient
        self.agreement_threshold = agreement_threshold
        self.scale = scale

    def _check_hyperparameters(self) -> None:
        super()._check_hyperparameters()
        check_scalar(
            self.agreement_threshold,
            "agreement_threshold",
            numbers.Real,
            min_val=-1,
            max_val=1,
        )
        if self.scale not in ("pv", "mean"):
            raise ValueError(f"scale must be 'pv' or 'mean', got {self.scale!r}")

    def _fit_differences(self, differences, groups):
        layered = as_layers(differences)
        if groups is None:
            warnings.warn(
                "ClusterSteerer was fitted without instruction_ids: all contrasts form one "
                "group, so the vector is PVSteerer's. Pass instruction_ids (e.g. from "
                "ActivationSet.steerer_inputs) to cluster by instruction pair.",
                UserWarning,
                stacklevel=4,
            )
            groups = np.zeros(layered.shape[0], dtype=np.intp)
        self.groups_, group_index = np.unique(groups, return_inverse=True)
        sums, counts = group_statistics(layered, group_index, self.groups_.size)
        cosines = cosine_matrices(sums / counts[:, None, None])
        masks = select_groups(cosines, self.agreement_threshold)
        selected = [self.groups_[mask].tolist() for mask in masks]
        if differences.ndim == 2:
            self.selected_groups_, self.group_cosines_ = selected[0], cosines[0]
        else:
            self.selected_groups_, self.group_cosines_ = selected, cosines
        vector = selected_mean(sums, counts, masks)
        if self.scale == "pv":
            pv_norm = np.linalg.norm(sums.sum(0) / counts.sum(), axis=-1, keepdims=True)
            vector = unit_vectors(vector) * pv_norm
        return vector.reshape(differences.shape[1:])
