"""Steering vectors built from the decoder rows of a sparse autoencoder (seed 001's
"feature-targeted" vectors).

A fitted SAE (:class:`steerkit.sae.SparseAutoencoder`, or any object with ``transform(X) ->
(n, F)``, ``W_dec_ (F, d)`` and ``site_``) dictionary-decomposes the activations at one site.
Instead of the contrastive mean, the steering vector is the mean of the decoder rows of the
features most related to the concept, chosen by one of two criteria:

- ``"activation"``: the contrastive input activation of each feature, ``mean z(pos) - mean
  z(neg)`` over the labelled samples (:func:`contrastive_feature_activation`);
- ``"influence"``: per-feature output-influence scores computed from the model (decoder row
  through the final norm and the unembedding) by :func:`steerkit.sae.analysis.feature_influence`
  and passed in as an array, so this module holds no model code.
"""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.base import clone

from ._base import BaseSteerer, _binary_target, unit_vectors
from .pv import class_mean_difference

CRITERIA = ("activation", "influence")


def contrastive_feature_activation(sae, X_positive: np.ndarray, X_negative: np.ndarray) -> np.ndarray:
    """Mean SAE feature activation on the positive samples minus that on the negative ones.

    Parameters
    ----------
    sae : a fitted sparse autoencoder (``transform(X) -> (n, F)``).
    X_positive : ndarray of shape (n_positive, d), activations at the SAE's site.
    X_negative : ndarray of shape (n_negative, d)

    Returns
    -------
    ndarray of shape (F,), float64, in feature-activation units.
    """
    positive = np.asarray(sae.transform(X_positive), dtype=np.float64)
    negative = np.asarray(sae.transform(X_negative), dtype=np.float64)
    return positive.mean(axis=0) - negative.mean(axis=0)


def top_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest ``scores`` (F,), highest first (ties: lower index first)."""
    return np.argsort(-np.asarray(scores), kind="stable")[:k]


class SAEFeatureSteerer(BaseSteerer):
    """Steer with the mean decoder row of the SAE features a concept uses most.

    Parameters
    ----------
    sae : a fitted sparse autoencoder at the steering site (shared by clones, never copied or
        refitted: ``clone`` keeps the same object).
    k : int, default=20
        Number of top features whose unit decoder rows are averaged (uniform weights).
    feature : int or None, default=None
        Steer with this one feature's decoder row instead (``k`` and ``criterion`` unused).
    criterion : {"activation", "influence"}, default="activation"
        How features are ranked (see the module docs).
    influence : array of shape (F,) or None
        Output-influence score per feature, needed by ``criterion="influence"``
        (:func:`steerkit.sae.analysis.feature_influence`).
    layer : int or None, default=None
        Which layer of 3-D activations ``(n, n_layers, d)`` the SAE reads; ``None`` uses
        ``sae.site_.layer``. Unused for 2-D activations.
    coefficient : float, default=1.0
        Steering strength: ``transform`` adds ``coefficient * vector_``.

    Attributes
    ----------
    vector_ : ndarray of shape (d,) or (n_layers, d)
        The mean of the selected unit decoder rows, rescaled to the norm of the concept's
        mean difference ``mean(pos) - mean(neg)`` at the SAE's layer, so one coefficient
        means the same strength as for :class:`PVSteerer`. For 3-D activations the vector is
        zero at every layer but the SAE's: its dictionary describes that layer only.
    features_ : ndarray of shape (k,) or (1,)
        The selected feature indices, best first.
    feature_scores_ : ndarray of shape (F,)
        The criterion's score of every feature (contrastive activation or influence).
    n_features_in_, n_layers_, n_contrasts_, classes_, direction_ : see :class:`BaseSteerer`.

    ``fit`` needs labelled samples (``y``): feature activations are not linear, so difference
    vectors ``h_pos - h_neg`` cannot be decomposed; pairing (``contrast_ids``) is not needed.
    """

    def __init__(self, sae=None, *, k: int = 20, feature: int | None = None, criterion: str = "activation",
                 influence=None, layer: int | None = None, coefficient: float = 1.0):
        super().__init__(coefficient=coefficient)
        self.sae = sae
        self.k = k
        self.feature = feature
        self.criterion = criterion
        self.influence = influence
        self.layer = layer

    def __sklearn_clone__(self):
        params = {name: clone(value, safe=False) for name, value in self.get_params(deep=False).items()
                  if name != "sae"}
        return type(self)(sae=self.sae, **params)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags

    def _check_hyperparameters(self) -> None:
        super()._check_hyperparameters()
        if self.sae is None or not hasattr(self.sae, "W_dec_"):
            raise ValueError("SAEFeatureSteerer needs a fitted SAE: pass sae=SparseAutoencoder(...).fit(X) "
                             "or sae=load_sae(folder)")
        n_features = self.sae.W_dec_.shape[0]
        if self.feature is not None:
            if not isinstance(self.feature, numbers.Integral) or not 0 <= self.feature < n_features:
                raise ValueError(f"feature must be an index in 0..{n_features - 1} of the SAE's features, "
                                 f"got {self.feature!r}")
            return
        if not isinstance(self.k, numbers.Integral) or not 1 <= self.k <= n_features:
            raise ValueError(f"k must be an integer in 1..{n_features} (the SAE's features), got {self.k!r}")
        if self.criterion not in CRITERIA:
            raise ValueError(f"criterion must be one of {CRITERIA}, got {self.criterion!r}")
        if self.criterion == "influence" and np.shape(self.influence) != (n_features,):
            raise ValueError(f"criterion='influence' needs influence=array of shape ({n_features},) "
                             "from steerkit.sae.analysis.feature_influence, got "
                             f"{None if self.influence is None else np.shape(self.influence)}")

    def _fit_on_differences(self, differences, contrast_ids, instruction_ids):
        raise ValueError("SAEFeatureSteerer needs labelled samples: pass y (1 = positive, 0 = negative), "
                         "not difference vectors")

    def _fit_on_samples(self, X, y, contrast_ids, instruction_ids):
        self.classes_, is_positive = _binary_target(y)
        at_site = X if X.ndim == 2 else X[:, self._sae_layer(X.shape[1])]
        positive, negative = at_site[is_positive], at_site[~is_positive]
        if self.feature is not None:
            self.feature_scores_ = contrastive_feature_activation(self.sae, positive, negative)
            self.features_ = np.array([self.feature])
        else:
            self.feature_scores_ = (contrastive_feature_activation(self.sae, positive, negative)
                                    if self.criterion == "activation" else np.asarray(self.influence, dtype=np.float64))
            self.features_ = top_indices(self.feature_scores_, self.k)
        decoder = unit_vectors(np.asarray(self.sae.W_dec_, dtype=np.float64)[self.features_])
        strength = np.linalg.norm(class_mean_difference(positive, negative))
        vector = (unit_vectors(decoder.mean(axis=0)) * strength).astype(X.dtype)
        if X.ndim == 2:
            self.vector_ = vector
        else:
            self.vector_ = np.zeros(X.shape[1:], dtype=X.dtype)
            self.vector_[self._sae_layer(X.shape[1])] = vector
        self.n_contrasts_ = (int(np.unique(contrast_ids).size) if contrast_ids is not None
                             else int(min(is_positive.sum(), (~is_positive).sum())))

    def _sae_layer(self, n_layers: int) -> int:
        """The layer of 3-D activations the SAE reads (``layer``, else ``sae.site_.layer``)."""
        layer = self.layer if self.layer is not None else getattr(getattr(self.sae, "site_", None), "layer", None)
        if layer is None:
            raise ValueError("the SAE records no site (sae.site_ is None): pass SAEFeatureSteerer(layer=L) "
                             "for 3-D activations, or fit on the (n, d) activations of its layer")
        if not 0 <= layer < n_layers:
            raise ValueError(f"layer {layer} is out of range for activations with {n_layers} layers: "
                             f"pass layer=0..{n_layers - 1}")
        return int(layer)
