"""Pure functions turning labelled activations into contrast difference vectors.

A *contrast* is a matched (positive, negative) pair of samples; its
difference vector is ``h_pos - h_neg``.  The functions here only index the
first (sample) axis, so activations may be of shape ``(n_samples, d)`` or
``(n_samples, n_layers, d)`` and the trailing axes are carried along
unchanged.
"""

from __future__ import annotations

import warnings

import numpy as np


def _python_scalar(value):
    """``value`` as a plain Python object, so that messages show ``5``, not
    ``np.int64(5)``."""
    return value.item() if isinstance(value, np.generic) else value


def match_by_contrast_id(
    is_positive: np.ndarray, contrast_ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Match samples sharing a contrast id into (positive, negative) pairs.

    Parameters
    ----------
    is_positive : ndarray of shape (n_samples,), dtype bool
        Whether each sample belongs to the positive class.
    contrast_ids : ndarray of shape (n_samples,)
        Pair label of each sample.

    Returns
    -------
    positive_index, negative_index : ndarray of shape (n_contrasts,), dtype int
        Row of the positive and of the negative sample of each contrast,
        ordered by sorted unique contrast id.
    ids : ndarray of shape (n_contrasts,)
        The sorted unique contrast ids.

    Raises
    ------
    ValueError
        If an id does not hold exactly one positive and one negative sample.
    """
    ids, inverse = np.unique(contrast_ids, return_inverse=True)
    n_positive = np.bincount(inverse[is_positive], minlength=ids.size)
    n_negative = np.bincount(inverse[~is_positive], minlength=ids.size)
    invalid = np.flatnonzero((n_positive != 1) | (n_negative != 1))
    if invalid.size:
        first = invalid[0]
        raise ValueError(
            f"contrast id {_python_scalar(ids[first])!r} has {n_positive[first]} "
            f"positive and {n_negative[first]} negative sample(s); every contrast "
            "id must mark exactly one positive and one negative sample."
        )
    positive_index = np.empty(ids.size, dtype=np.intp)
    negative_index = np.empty(ids.size, dtype=np.intp)
    positive_index[inverse[is_positive]] = np.flatnonzero(is_positive)
    negative_index[inverse[~is_positive]] = np.flatnonzero(~is_positive)
    return positive_index, negative_index, ids


def match_by_order(is_positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Match the k-th positive sample with the k-th negative sample.

    If the class counts differ, the surplus samples of the larger class (the
    last ones in order of occurrence) have no partner; they are left out and a
    ``UserWarning`` says so.

    Parameters
    ----------
    is_positive : ndarray of shape (n_samples,), dtype bool
        Whether each sample belongs to the positive class.

    Returns
    -------
    positive_index, negative_index : ndarray of shape (n_contrasts,), dtype int
        Row of the positive and of the negative sample of each contrast, with
        ``n_contrasts = min(n_positive, n_negative)``.
    """
    positive_index = np.flatnonzero(is_positive)
    negative_index = np.flatnonzero(~is_positive)
    n_contrasts = min(positive_index.size, negative_index.size)
    if positive_index.size != negative_index.size:
        warnings.warn(
            f"Pairing {positive_index.size} positive with {negative_index.size} "
            f"negative samples by order of occurrence: only {n_contrasts} "
            "contrasts can be formed and the surplus samples of the larger class "
            "are ignored. Pass contrast_ids, or balanced data in matching order.",
            UserWarning,
            stacklevel=4,
        )
    return positive_index[:n_contrasts], negative_index[:n_contrasts]


def pair_groups(
    instruction_ids: np.ndarray | None,
    positive_index: np.ndarray,
    negative_index: np.ndarray,
    pair_labels: np.ndarray,
) -> np.ndarray | None:
    """Instruction group of each contrast, taken from its two samples.

    Parameters
    ----------
    instruction_ids : ndarray of shape (n_samples,) or None
        Per-sample instruction group; ``None`` gives ``None``.
    positive_index, negative_index : ndarray of shape (n_contrasts,), dtype int
        Rows of each contrast's samples.
    pair_labels : ndarray of shape (n_contrasts,)
        Name of each contrast used in error messages (its contrast id, or its
        position when pairing by order).

    Returns
    -------
    groups : ndarray of shape (n_contrasts,) or None

    Raises
    ------
    ValueError
        If the two samples of a contrast carry different instruction ids.
    """
    if instruction_ids is None:
        return None
    positive_groups = instruction_ids[positive_index]
    negative_groups = instruction_ids[negative_index]
    mismatch = np.flatnonzero(positive_groups != negative_groups)
    if mismatch.size:
        first = mismatch[0]
        raise ValueError(
            f"instruction_ids differ within contrast "
            f"{_python_scalar(pair_labels[first])!r}: the positive sample has "
            f"{_python_scalar(positive_groups[first])!r} and the negative sample "
            f"has {_python_scalar(negative_groups[first])!r}."
        )
    return positive_groups


def paired_differences(
    X: np.ndarray,
    is_positive: np.ndarray,
    contrast_ids: np.ndarray,
    instruction_ids: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Difference vectors of the contrasts named by ``contrast_ids``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, d) or (n_samples, n_layers, d)
        Activations, in activation units.
    is_positive : ndarray of shape (n_samples,), dtype bool
    contrast_ids : ndarray of shape (n_samples,)
    instruction_ids : ndarray of shape (n_samples,) or None

    Returns
    -------
    differences : ndarray of shape (n_contrasts, d) or (n_contrasts, n_layers, d)
        ``h_pos - h_neg`` per contrast, ordered by sorted unique contrast id.
    groups : ndarray of shape (n_contrasts,) or None
        Instruction group of each contrast.
    """
    positive_index, negative_index, ids = match_by_contrast_id(
        is_positive, contrast_ids
    )
    groups = pair_groups(instruction_ids, positive_index, negative_index, ids)
    return X[positive_index] - X[negative_index], groups


def ordered_differences(
    X: np.ndarray,
    is_positive: np.ndarray,
    instruction_ids: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Difference vectors of contrasts formed by order of occurrence.

    See :func:`match_by_order` for the pairing rule (and the warning given for
    unbalanced classes).

    Parameters
    ----------
    X : ndarray of shape (n_samples, d) or (n_samples, n_layers, d)
        Activations, in activation units.
    is_positive : ndarray of shape (n_samples,), dtype bool
    instruction_ids : ndarray of shape (n_samples,) or None

    Returns
    -------
    differences : ndarray of shape (n_contrasts, d) or (n_contrasts, n_layers, d)
        ``h_pos - h_neg`` of the k-th positive and k-th negative sample.
    groups : ndarray of shape (n_contrasts,) or None
        Instruction group of each contrast.
    """
    positive_index, negative_index = match_by_order(is_positive)
    pair_labels = np.arange(positive_index.size)
    groups = pair_groups(instruction_ids, positive_index, negative_index, pair_labels)
    return X[positive_index] - X[negative_index], groups
