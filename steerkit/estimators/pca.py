"""repeng-compatible steering along the first principal component."""

from __future__ import annotations

import numpy as np

from ._base import BaseSteerer, as_layers, unit_vectors

METHODS = ("pca_diff", "pca_center")
SCALES = ("projection", "unit")


def pca_samples(layered: np.ndarray, method: str) -> np.ndarray:
    """The per-layer point clouds whose first principal component is wanted.

    Parameters
    ----------
    layered : ndarray of shape (n_contrasts, n_layers, d)
        Difference vectors ``d_i``.
    method : {"pca_diff", "pca_center"}
        ``"pca_diff"``: the differences themselves. ``"pca_center"``: each
        contrast's two activations centred on their midpoint, i.e. ``d_i / 2``
        and ``-d_i / 2``.

    Returns
    -------
    ndarray of shape (n_layers, n_points, d)
        ``n_points`` is ``n_contrasts`` or ``2 * n_contrasts``.
    """
    if method == "pca_center":
        layered = np.concatenate([layered / 2, -layered / 2])
    return layered.transpose(1, 0, 2)


def first_component(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First principal component of each layer's re-centred point cloud.

    Uses one batched SVD over layers, as ``sklearn.decomposition.PCA``
    would per layer.

    Parameters
    ----------
    samples : ndarray of shape (n_layers, n_points, d)

    Returns
    -------
    component : ndarray of shape (n_layers, d)
        Unit vector per layer, sign arbitrary.
    has_variance : ndarray of shape (n_layers,), dtype bool
        False where the centred cloud is numerically zero (e.g. a single
        point), so that ``component`` is meaningless.
    """
    centred = samples - samples.mean(axis=1, keepdims=True)
    _, singular_values, vt = np.linalg.svd(centred, full_matrices=False)
    scale = np.abs(samples).max(axis=(1, 2))
    tolerance = np.finfo(samples.dtype).eps * max(samples.shape[1:]) * scale
    return vt[:, 0, :], singular_values[:, 0] > tolerance


def orient_component(component: np.ndarray, layered: np.ndarray) -> np.ndarray:
    """Flip each layer's component so most differences project positively.

    repeng's rule; ties (as many positive as negative projections) are broken
    by the sign of the mean projection, and kept as is if that is zero.

    Parameters
    ----------
    component : ndarray of shape (n_layers, d)
    layered : ndarray of shape (n_contrasts, n_layers, d)
        Difference vectors.

    Returns
    -------
    ndarray of shape (n_layers, d)
    """
    projections = np.einsum("nld,ld->nl", layered, component)
    majority = np.sign(projections).sum(axis=0)
    flip = (majority < 0) | ((majority == 0) & (projections.mean(axis=0) < 0))
    return np.where(flip[:, None], -component, component)


def project_mean_difference(component: np.ndarray, layered: np.ndarray) -> np.ndarray:
    """The mean difference projected on each layer's unit ``component``.

    Parameters
    ----------
    component : ndarray of shape (n_layers, d)
    layered : ndarray of shape (n_contrasts, n_layers, d)

    Returns
    -------
    ndarray of shape (n_layers, d), in activation units
        ``(mean_i d_i · c) c``.
    """
    length = np.einsum("ld,ld->l", layered.mean(axis=0), component)
    return length[:, None] * component


def pca_vector(layered: np.ndarray, method: str, scale: str) -> np.ndarray:
    """Oriented first principal component of the differences, scaled.

    Layers without variance (e.g. a single contrast with ``"pca_diff"``) fall
    back to the normalised mean difference.

    Parameters
    ----------
    layered : ndarray of shape (n_contrasts, n_layers, d)
    method : {"pca_diff", "pca_center"}
    scale : {"projection", "unit"}

    Returns
    -------
    ndarray of shape (n_layers, d)
    """
    component, has_variance = first_component(pca_samples(layered, method))
    fallback = unit_vectors(layered.mean(axis=0))
    component = np.where(has_variance[:, None], component, fallback)
    component = orient_component(component, layered)
    if scale == "unit":
        return component
    return project_mean_difference(component, layered)


class PCASteerer(BaseSteerer):
    """Steer along the first principal component of the differences (repeng).

    Per layer, the first principal component of a point cloud built from the
    contrast differences ``d_i = h_pos - h_neg`` is computed by SVD (batched
    over layers):

    * ``method="pca_diff"``: PCA of the differences. PCA re-centres the data
      (as ``sklearn.decomposition.PCA`` and repeng do), so this is the main
      axis of *variation* of the differences, not the mean difference.
    * ``method="pca_center"``: PCA of each contrast's two activations centred
      on the pair's midpoint, ``d_i / 2`` and ``-d_i / 2``.

    The component is signed so that most differences project positively on
    it (repeng's rule; ties go to the sign of the mean projection).

    When a layer's cloud has no variance — in particular a single contrast
    with ``"pca_diff"``, whose centred matrix is zero — the component falls
    back to the normalised mean difference (the normalised single difference
    for one contrast).

    Parameters
    ----------
    coefficient : float, default=1.0
        Steering strength: ``transform`` adds ``coefficient * vector_``.
    method : {"pca_diff", "pca_center"}, default="pca_diff"
        Point cloud whose first principal component is taken (see above).
    scale : {"projection", "unit"}, default="projection"
        ``"unit"``: ``vector_`` is the unit component ``c``.
        ``"projection"``: ``vector_ = (mean_i d_i · c) c``, the persona vector
        projected on ``c``, so coefficients mean the same as for
        :class:`PVSteerer` (it points against ``c`` in the rare case where
        the majority and the mean of the projections disagree in sign).

    Attributes
    ----------
    vector_ : ndarray of shape (d,) or (n_layers, d)
        Scaled component, in activation units for ``scale="projection"``,
        unit norm per layer for ``scale="unit"``.
    direction_ : ndarray of shape (d,) or (n_layers, d)
        ``vector_`` normalised per layer (zero stays zero).
    n_features_in_ : int
        Width ``d`` of the activations.
    n_layers_ : int or None
        Number of layers for 3-D fits, else ``None``.
    n_contrasts_ : int
        Number of contrasts.
    classes_ : ndarray of shape (2,)
        Labels seen in ``y`` (only when fitted with ``y``).

    See :class:`~steerkit.estimators.BaseSteerer` for the shared ``fit``,
    ``transform`` and ``decision_function`` contract.
    """

    def __init__(
        self,
        coefficient: float = 1.0,
        *,
        method: str = "pca_diff",
        scale: str = "projection",
    ):
        self.coefficient = coefficient
        self.method = method
        self.scale = scale

    def _check_hyperparameters(self) -> None:
        super()._check_hyperparameters()
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}; got {self.method!r}.")
        if self.scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}; got {self.scale!r}.")

    def _fit_differences(self, differences, groups):
        vector = pca_vector(as_layers(differences), self.method, self.scale)
        return vector.reshape(differences.shape[1:])
