"""Shared machinery of all steerers: input validation, pairing, transform."""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.utils import ClassifierTags
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    check_array,
    check_consistent_length,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

from steerkit._values import check_coefficient, check_finite

from ._pairs import ordered_differences, paired_differences

FLOAT_DTYPES = (np.float64, np.float32)
"""Accepted computation dtypes; anything else is converted to the first."""


def unit_vectors(vectors: np.ndarray) -> np.ndarray:
    """Normalise ``vectors`` along the last axis; zero vectors stay zero.

    Parameters
    ----------
    vectors : ndarray of shape (..., d)

    Returns
    -------
    ndarray of shape (..., d)
        Unit-norm rows, or all-zero rows where the input row is zero.
    """
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


def as_layers(differences: np.ndarray) -> np.ndarray:
    """View differences of shape (n, d) as (n, 1, d); (n, n_layers, d) is kept.

    Lets per-layer constructions be written once for the 3-D layout; reshape
    their (n_layers, d) result with ``.reshape(differences.shape[1:])``.
    """
    return differences.reshape(differences.shape[0], -1, differences.shape[-1])


def _binary_target(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Classes of a binary target and the mask of its positive samples.

    Returns
    -------
    classes : ndarray of shape (2,)
        ``np.unique(y)``; ``classes[1]`` is the positive class.
    is_positive : ndarray of shape (n_samples,), dtype bool
    """
    check_classification_targets(y)
    classes = np.unique(y)
    if classes.size != 2:
        raise ValueError(
            "y must hold exactly 2 classes (negative, positive); got "
            f"{classes.size} class(es): {classes.tolist()}. Pass y=None if the "
            "rows of X are already difference vectors h_pos - h_neg."
        )
    return classes, y == classes[1]


def _sample_metadata(values, n_samples: int, name: str) -> np.ndarray | None:
    """``values`` as a 1-D array with one entry per sample (``None`` kept)."""
    if values is None:
        return None
    values = np.asarray(values)
    if values.shape != (n_samples,):
        raise ValueError(
            f"{name} must be a 1-D array with one entry per row of X "
            f"({n_samples}); got shape {values.shape}."
        )
    return values


def _shape(X) -> tuple[int, ...]:
    """Shape of an array-like without validating it."""
    shape = getattr(X, "shape", None)
    return np.asarray(X).shape if shape is None else tuple(shape)


class BaseSteerer(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Base class of steerers: learn one steering vector, add it to activations.

    Subclasses implement ``_fit_differences`` (and may override
    ``_fit_unpaired``); everything else — validation of activations, labels
    and pairing metadata, ``transform`` and ``decision_function`` — is shared.

    Parameters
    ----------
    coefficient : float, default=1.0
        Steering strength: ``transform`` adds ``coefficient * vector_``. Must be finite
        with ``|coefficient| <= steerkit._values.MAX_ABS_COEFFICIENT`` (1e4); checked by ``fit``,
        ``set_params`` and ``transform``.

    Attributes
    ----------
    vector_ : ndarray of shape (d,) or (n_layers, d)
        Steering vector, in activation units (not unit norm).
    direction_ : ndarray of shape (d,) or (n_layers, d)
        ``vector_`` normalised per layer (a zero vector stays zero).
    n_features_in_ : int
        Width ``d`` of the activations.
    n_layers_ : int or None
        Number of layers of 3-D activations; ``None`` for 2-D fits.
    n_contrasts_ : int
        Number of contrasts (difference vectors) the vector was learned from.
    classes_ : ndarray of shape (2,)
        Labels seen in ``y`` (only when fitted with ``y``); ``classes_[1]`` is
        the positive class.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Column names, only when fitted on a 2-D DataFrame with string columns.

    Notes
    -----
    Design decisions (also relevant to scikit-learn's common estimator checks):

    * ``y`` is optional (``target_tags.required = False``): without it the
      rows of ``X`` are difference vectors ``h_pos - h_neg``.
    * ``y`` must be binary. Non-class targets raise scikit-learn's
      ``"Unknown label type"`` ``ValueError`` and targets with other than two
      classes raise a ``ValueError`` naming the classes. There is no
      principled reading of a 3-class or continuous target as "positive vs
      negative", so guessing one would silently produce a meaningless vector.
      The estimators declare this via the standard tag
      ``classifier_tags.multi_class = False`` ("binary targets only"), which
      scikit-learn's common checks honour by binarising the labels they pass
      (without it 13 checks fit on 3- or 4-class labels and fail). The tag
      does not make a steerer a classifier: ``estimator_type`` stays
      ``"transformer"`` and ``is_classifier`` is False.
    * Labelled data without ``contrast_ids`` is paired by order (k-th positive
      with k-th negative). With unbalanced classes the surplus samples of the
      larger class have no partner: they are ignored with a ``UserWarning``
      rather than rejected. This is the same order-of-occurrence rule the
      balanced case already applies to data without pairing information, it
      keeps every steerer usable on any binary labelling (the common checks
      rely on this: their binarised labels are mostly unbalanced, and raising
      would fail 16 of them), and the warning tells the user to pass
      ``contrast_ids``. :class:`PVSteerer` needs no
      pairs and uses ``mean(pos) - mean(neg)`` over all samples instead.
    * Activations stay float32 if given as float32; anything else is
      computed in float64. ``transform`` returns the dtype of its input.
    * 2-D inputs are validated with ``validate_data`` (standard
      ``n_features_in_`` / feature-name checks and messages). 3-D inputs
      ``(n_samples, n_layers, d)`` get the equivalent checks by hand
      (numeric, finite, at least one sample, layer and feature), and
      ``transform`` requires the fitted layout ``(n_layers_, n_features_in_)``.
    * ``get_feature_names_out`` is one-to-one with the ``d`` input features
      (per layer for 3-D inputs).
    * A NaN, infinite or absurd (``|c| > 1e4``) ``coefficient`` would turn
      the steered logits into NaN or noise, so it is refused with a ``ValueError``
      where it enters: ``fit``, ``transform``, and already ``set_params``
      (also nested, ``steerer__coefficient``), before any parameter changes,
      so a search fails before generating anything. ``set_params`` only
      checks real numbers; other values (wrong types) are left to ``fit``, as
      scikit-learn's ``check_do_not_raise_errors_in_init_or_set_params``
      requires. A fitted ``vector_`` that overflows to inf is refused by
      ``fit`` as well.
    """

    def __init__(self, coefficient: float = 1.0):
        self.coefficient = coefficient

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = False
        tags.input_tags.three_d_array = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.classifier_tags = ClassifierTags(multi_class=False)
        return tags

    def fit(self, X, y=None, *, contrast_ids=None, instruction_ids=None):
        """Learn the steering vector.

        Parameters
        ----------
        X : array-like of shape (n_samples, d) or (n_samples, n_layers, d)
            Activations in activation units: labelled samples if ``y`` is
            given, otherwise difference vectors ``h_pos - h_neg``, one per
            contrast.
        y : array-like of shape (n_samples,), default=None
            Binary labels; ``np.unique(y)[1]`` is the positive class.
        contrast_ids : array-like of shape (n_samples,), default=None
            Pair label of each sample (needs ``y``): each id must mark exactly
            one positive and one negative sample. Without it labelled samples
            are paired by order of occurrence.
        instruction_ids : array-like of shape (n_samples,), default=None
            Instruction group of each sample (with ``y``; both samples of a
            contrast must agree) or of each difference (``y=None``). Only
            :class:`ClusterSteerer` uses it.

        Returns
        -------
        self : object
            The fitted steerer.
        """
        self._check_hyperparameters()
        X, y = self._validate_fit_data(X, y)
        contrast_ids = _sample_metadata(contrast_ids, X.shape[0], "contrast_ids")
        instruction_ids = _sample_metadata(
            instruction_ids, X.shape[0], "instruction_ids"
        )
        if y is None:
            self._fit_on_differences(X, contrast_ids, instruction_ids)
        else:
            self._fit_on_samples(X, y, contrast_ids, instruction_ids)
        check_finite(
            self.vector_, f"the fitted {type(self).__name__}.vector_",
            "the activations are too large for their float type: rescale them or fit in float64",
        )
        self.direction_ = unit_vectors(self.vector_)
        return self

    def set_params(self, **params):
        """Set parameters (see the class Notes for the ``coefficient`` check).

        Returns
        -------
        self : object
        """
        coefficient = params.get("coefficient")
        if isinstance(coefficient, numbers.Real):
            check_coefficient(coefficient)
        return super().set_params(**params)

    def transform(self, X):
        """Steer activations: return ``X + coefficient * vector_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, d) or (n_samples, n_layers, d)
            Activations with the layout seen in ``fit``.

        Returns
        -------
        X_steered : ndarray of the same shape as ``X``
            New array (``X`` is not modified), in activation units, with the
            dtype of ``X`` (float32 kept, other inputs as float64).
        """
        check_is_fitted(self)
        coefficient = check_coefficient(self.coefficient)
        X = self._validate_inference_data(X)
        return X + (coefficient * self.vector_).astype(X.dtype, copy=False)

    def decision_function(self, X):
        """Project activations on the steering direction.

        Parameters
        ----------
        X : array-like of shape (n_samples, d) or (n_samples, n_layers, d)
            Activations with the layout seen in ``fit``.

        Returns
        -------
        projection : ndarray of shape (n_samples,) or (n_samples, n_layers)
            ``X · direction_`` (per layer for 3-D), in activation units.
        """
        check_is_fitted(self)
        X = self._validate_inference_data(X)
        direction = self.direction_.astype(X.dtype, copy=False)
        return np.einsum("...d,...d->...", X, direction)

    def _fit_differences(self, differences: np.ndarray, groups) -> np.ndarray:
        """Steering vector from difference vectors (implemented by subclasses).

        Parameters
        ----------
        differences : ndarray of shape (n_contrasts, d) or (n_contrasts, n_layers, d)
            ``h_pos - h_neg`` per contrast.
        groups : ndarray of shape (n_contrasts,) or None
            Instruction group of each contrast.

        Returns
        -------
        vector : ndarray of shape (d,) or (n_layers, d)
        """
        raise NotImplementedError

    def _fit_unpaired(self, X, is_positive, instruction_ids):
        """Steering vector and contrast count from labelled samples without
        ``contrast_ids``: pair by order (see ``_pairs.match_by_order``)."""
        differences, groups = ordered_differences(X, is_positive, instruction_ids)
        return self._fit_differences(differences, groups), differences.shape[0]

    def _check_hyperparameters(self) -> None:
        """Validate ``__init__`` parameters (extended by subclasses)."""
        check_coefficient(self.coefficient)

    def _fit_on_differences(self, differences, contrast_ids, instruction_ids):
        """Fit on rows that already are difference vectors (``y=None``)."""
        if contrast_ids is not None:
            raise ValueError(
                "contrast_ids pair labelled samples and need y; with y=None "
                "every row of X is already one contrast's difference vector."
            )
        if hasattr(self, "classes_"):
            del self.classes_
        self.vector_ = self._fit_differences(differences, instruction_ids)
        self.n_contrasts_ = differences.shape[0]

    def _fit_on_samples(self, X, y, contrast_ids, instruction_ids):
        """Fit on labelled samples, paired by ``contrast_ids`` or by order."""
        self.classes_, is_positive = _binary_target(y)
        if contrast_ids is None:
            self.vector_, self.n_contrasts_ = self._fit_unpaired(
                X, is_positive, instruction_ids
            )
            return
        differences, groups = paired_differences(
            X, is_positive, contrast_ids, instruction_ids
        )
        self.vector_ = self._fit_differences(differences, groups)
        self.n_contrasts_ = differences.shape[0]

    def _validate_fit_data(self, X, y):
        """Validate activations (and labels); record their layout."""
        if len(_shape(X)) == 3:
            return self._validate_layered_fit_data(X, y)
        self.n_layers_ = None
        if y is None:
            return validate_data(self, X, dtype=FLOAT_DTYPES), None
        return validate_data(self, X, y, dtype=FLOAT_DTYPES)

    def _validate_layered_fit_data(self, X, y):
        """``_validate_fit_data`` for 3-D activations (n_samples, n_layers, d)."""
        X = self._check_layered(X)
        if y is not None:
            y = column_or_1d(y, warn=True)
            check_consistent_length(X, y)
        self.n_layers_, self.n_features_in_ = X.shape[1:]
        if hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        return X, y

    def _check_layered(self, X) -> np.ndarray:
        """Checks for 3-D activations equivalent to ``validate_data``'s."""
        X = check_array(
            X, allow_nd=True, dtype=FLOAT_DTYPES, estimator=self, input_name="X"
        )
        if min(X.shape[1:]) < 1:
            raise ValueError(
                f"Found 3-D activations of shape {X.shape}; at least 1 layer and "
                f"1 feature are required by {type(self).__name__}."
            )
        return X

    def _validate_inference_data(self, X) -> np.ndarray:
        """Validate activations passed to ``transform``/``decision_function``."""
        fitted_ndim = 2 if self.n_layers_ is None else 3
        shape = _shape(X)
        if (len(shape) == 3) != (fitted_ndim == 3):
            raise ValueError(
                f"{type(self).__name__} was fitted on {fitted_ndim}-D activations "
                f"{self._fitted_layout()} but X is {len(shape)}-D with shape "
                f"{shape}; pass activations with the layout used in fit."
            )
        if fitted_ndim == 2:
            return validate_data(self, X, reset=False, dtype=FLOAT_DTYPES)
        X = self._check_layered(X)
        if X.shape[1:] != (self.n_layers_, self.n_features_in_):
            raise ValueError(
                f"X has shape {X.shape} but {type(self).__name__} was fitted on "
                f"activations {self._fitted_layout()}."
            )
        return X

    def _fitted_layout(self) -> str:
        """The fitted activation layout, for error messages."""
        if self.n_layers_ is None:
            return f"of shape (n_samples, d={self.n_features_in_})"
        return (
            f"of shape (n_samples, n_layers={self.n_layers_}, "
            f"d={self.n_features_in_})"
        )
