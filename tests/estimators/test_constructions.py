"""Steering-vector constructions against naive reference computations."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from sklearn.decomposition import PCA

from steerkit.estimators import ClusterSteerer, PCASteerer, PVSteerer, UnitMeanSteerer

LAYOUTS = {"2d": (5,), "3d": (3, 5)}
MODES = ["contrast_ids", "order", "differences"]


# --------------------------------------------------------------------------
# data and fitting helpers
# --------------------------------------------------------------------------


def make_pairs(n_pairs, tail, seed=0):
    """Positive and negative activations of ``n_pairs`` contrasts."""
    rng = np.random.default_rng(seed)
    negative = rng.normal(size=(n_pairs, *tail))
    shift = rng.normal(size=tail) + 0.8 * rng.normal(size=(n_pairs, *tail))
    return negative + shift, negative


def labelled_by_ids(positive, negative, seed=0):
    """Shuffled labelled samples with the contrast id of each sample."""
    n_pairs = positive.shape[0]
    X = np.concatenate([positive, negative])
    y = np.repeat([1, 0], n_pairs)
    ids = np.tile(np.arange(n_pairs), 2)
    order = np.random.default_rng(seed).permutation(2 * n_pairs)
    return X[order], y[order], ids[order]


def labelled_by_order(positive, negative, seed=0):
    """Labelled samples, classes interleaved at random, each class in pair order."""
    n_pairs = positive.shape[0]
    y = np.random.default_rng(seed).permutation(np.repeat([1, 0], n_pairs))
    X = np.empty((2 * n_pairs, *positive.shape[1:]))
    X[y == 1], X[y == 0] = positive, negative
    return X, y


def fit(steerer, positive, negative, mode, instruction_ids=None):
    """Fit ``steerer`` on the contrasts given in one of the three input modes.

    ``instruction_ids`` is per contrast; it is spread to the samples as needed.
    """
    if mode == "differences":
        return steerer.fit(positive - negative, instruction_ids=instruction_ids)
    if mode == "order":
        X, y = labelled_by_order(positive, negative)
        per_sample = None
        if instruction_ids is not None:
            per_sample = np.empty(len(y), dtype=np.asarray(instruction_ids).dtype)
            per_sample[y == 1] = per_sample[y == 0] = instruction_ids
        return steerer.fit(X, y, instruction_ids=per_sample)
    X, y, ids = labelled_by_ids(positive, negative)
    per_sample = None if instruction_ids is None else np.asarray(instruction_ids)[ids]
    return steerer.fit(X, y, contrast_ids=ids, instruction_ids=per_sample)


def as_layered(array):
    """(n, d) -> (n, 1, d); (n, L, d) unchanged (test-side helper)."""
    return array if array.ndim == 3 else array[:, None, :]


def unlayer(result, tail):
    return np.asarray(result).reshape(tail)


# --------------------------------------------------------------------------
# naive references (explicit loops over contrasts and layers)
# --------------------------------------------------------------------------


def naive_mean(differences):
    total = np.zeros(differences.shape[1:])
    for difference in differences:
        total += difference
    return total / len(differences)


def naive_unit_mean(differences, tail):
    layered = as_layered(differences)
    result = np.zeros(layered.shape[1:])
    for layer in range(layered.shape[1]):
        units = [
            d / np.linalg.norm(d) for d in layered[:, layer] if np.linalg.norm(d) > 0
        ]
        u = np.mean(units, axis=0)
        pv = naive_mean(layered[:, layer])
        result[layer] = u / np.linalg.norm(u) * np.linalg.norm(pv)
    return unlayer(result, tail)


def naive_pca(differences, tail, method, scale):
    layered = as_layered(differences)
    result = np.zeros(layered.shape[1:])
    for layer in range(layered.shape[1]):
        diffs = layered[:, layer]
        cloud = diffs if method == "pca_diff" else np.vstack([diffs / 2, -diffs / 2])
        component = PCA(n_components=1).fit(cloud).components_[0]
        n_above = sum(d @ component > 0 for d in diffs)
        n_below = sum(d @ component < 0 for d in diffs)
        if n_below > n_above or (
            n_below == n_above and np.mean(diffs @ component) < 0
        ):
            component = -component
        if scale == "projection":
            component = (naive_mean(diffs) @ component) * component
        result[layer] = component
    return unlayer(result, tail)


def cosine(a, b):
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return 0.0 if na == 0 or nb == 0 else float(a @ b / (na * nb))


def naive_selection(means, threshold):
    """Exhaustive search over all subsets of group means (one layer)."""
    n_groups = len(means)
    cos = [[cosine(means[i], means[j]) for j in range(n_groups)] for i in range(n_groups)]
    for size in range(n_groups, 1, -1):
        best, best_score = None, -np.inf
        for subset in itertools.combinations(range(n_groups), size):
            pairs = list(itertools.combinations(subset, 2))
            if all(cos[i][j] > threshold for i, j in pairs):
                score = np.mean([cos[i][j] for i, j in pairs])
                if score > best_score:
                    best, best_score = subset, score
        if best is not None:
            return list(best)
    if n_groups == 1:
        return [0]
    to_others = [
        np.mean([cos[i][j] for j in range(n_groups) if j != i]) for i in range(n_groups)
    ]
    return [int(np.argmax(to_others))]


def naive_cluster(differences, groups, threshold, tail):
    layered = as_layered(differences)
    labels = sorted(set(groups))
    groups = np.asarray(groups)
    vectors, selections = [], []
    for layer in range(layered.shape[1]):
        diffs = layered[:, layer]
        means = [diffs[groups == label].mean(axis=0) for label in labels]
        chosen = [labels[i] for i in naive_selection(means, threshold)]
        selections.append(chosen)
        vectors.append(diffs[np.isin(groups, chosen)].mean(axis=0))
    return unlayer(vectors, tail), selections


# --------------------------------------------------------------------------
# constructions
# --------------------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("mode", MODES)
def test_pv_is_the_mean_difference(layout, mode):
    tail = LAYOUTS[layout]
    positive, negative = make_pairs(7, tail)
    steerer = fit(PVSteerer(), positive, negative, mode)
    np.testing.assert_allclose(steerer.vector_, naive_mean(positive - negative))
    assert steerer.n_contrasts_ == 7


def test_pv_without_pairs_uses_class_means_of_unbalanced_data():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(9, 2, 4))
    y = np.array([1, 0, 1, 1, 0, 1, 1, 0, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        steerer = PVSteerer().fit(X, y)
    np.testing.assert_allclose(steerer.vector_, X[y == 1].mean(0) - X[y == 0].mean(0))


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("mode", MODES)
def test_unit_mean_matches_naive(layout, mode):
    tail = LAYOUTS[layout]
    positive, negative = make_pairs(7, tail, seed=1)
    steerer = fit(UnitMeanSteerer(), positive, negative, mode)
    differences = positive - negative
    np.testing.assert_allclose(steerer.vector_, naive_unit_mean(differences, tail))
    np.testing.assert_allclose(
        np.linalg.norm(steerer.vector_, axis=-1),
        np.linalg.norm(naive_mean(differences), axis=-1),
    )


def test_unit_mean_skips_zero_differences():
    rng = np.random.default_rng(2)
    differences = rng.normal(size=(6, 2, 4))
    differences[[1, 4], 0] = 0.0
    steerer = UnitMeanSteerer().fit(differences)
    np.testing.assert_allclose(steerer.vector_, naive_unit_mean(differences, (2, 4)))


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("method", ["pca_diff", "pca_center"])
@pytest.mark.parametrize("scale", ["projection", "unit"])
def test_pca_matches_sklearn_pca_with_sign_rule(layout, mode, method, scale):
    tail = LAYOUTS[layout]
    positive, negative = make_pairs(9, tail, seed=4)
    steerer = fit(PCASteerer(method=method, scale=scale), positive, negative, mode)
    expected = naive_pca(positive - negative, tail, method, scale)
    np.testing.assert_allclose(steerer.vector_, expected, atol=1e-10)


def test_pca_component_equals_sklearn_pca_up_to_sign():
    positive, negative = make_pairs(10, (6,), seed=5)
    differences = positive - negative
    steerer = PCASteerer(scale="unit").fit(differences)
    component = PCA(n_components=1).fit(differences).components_[0]
    assert abs(steerer.direction_ @ component) == pytest.approx(1.0)
    mean_direction = naive_mean(differences) / np.linalg.norm(naive_mean(differences))
    assert abs(steerer.direction_ @ mean_direction) < 0.99


def test_pca_sign_follows_the_majority_not_the_mean():
    rng = np.random.default_rng(6)
    along = np.array([1.0, 1.0, 1.0, -10.0])
    differences = np.outer(along, [1.0, 0.0, 0.0]) + 1e-3 * rng.normal(size=(4, 3))
    unit = PCASteerer(scale="unit").fit(differences)
    assert unit.vector_[0] > 0.99
    projected = PCASteerer().fit(differences)
    mean_projection = naive_mean(differences) @ unit.vector_
    assert mean_projection < 0
    np.testing.assert_allclose(projected.vector_, mean_projection * unit.vector_)
    flipped = PCASteerer(scale="unit").fit(-differences)
    np.testing.assert_allclose(flipped.vector_, -unit.vector_)


def test_pca_sign_tie_goes_to_positive_mean_projection():
    differences = np.array([[3.0, 0.1], [1.0, -0.1], [-1.0, 0.1], [-2.0, -0.1]])
    steerer = PCASteerer(scale="unit").fit(differences)
    assert (differences @ steerer.vector_).mean() > 0
    assert steerer.vector_[0] > 0


def test_pca_diff_single_contrast_falls_back_to_the_difference():
    difference = np.array([[3.0, -4.0, 0.0]])
    unit = PCASteerer(scale="unit").fit(difference)
    np.testing.assert_allclose(unit.vector_, [0.6, -0.8, 0.0])
    np.testing.assert_allclose(PCASteerer().fit(difference).vector_, difference[0])


# --------------------------------------------------------------------------
# ClusterSteerer
# --------------------------------------------------------------------------


def planted_groups(directions, n_per_group=6, noise=0.1, seed=7):
    """Differences of shape (n, n_layers, d); group g of layer l points along
    ``directions[l][g]`` (plus noise)."""
    rng = np.random.default_rng(seed)
    directions = np.asarray(directions, dtype=float)
    n_layers, n_groups, d = directions.shape
    groups = np.repeat(np.arange(n_groups), n_per_group)
    differences = directions[:, groups].transpose(1, 0, 2)
    differences = differences + noise * rng.normal(size=differences.shape)
    return differences, groups


def basis(d, index):
    vector = np.zeros(d)
    vector[index] = 1.0
    return vector


def test_cluster_selects_the_planted_agreeing_groups_2d():
    a, b, c = basis(8, 0), basis(8, 1), basis(8, 2)
    differences, groups = planted_groups([[a, a, a, b, c]])
    differences = differences[:, 0]
    labels = np.array(["g0", "g1", "g2", "g3", "g4"])[groups]
    steerer = ClusterSteerer(scale="mean").fit(differences, instruction_ids=labels)
    assert steerer.selected_groups_ == ["g0", "g1", "g2"]
    np.testing.assert_array_equal(steerer.groups_, ["g0", "g1", "g2", "g3", "g4"])
    np.testing.assert_allclose(steerer.vector_, differences[groups <= 2].mean(axis=0))
    assert steerer.group_cosines_.shape == (5, 5)


@pytest.mark.parametrize("mode", MODES)
def test_cluster_selects_planted_groups_per_layer_3d(mode):
    a, b, c = basis(6, 0), basis(6, 1), basis(6, 2)
    differences, groups = planted_groups([[a, a, a, b, c], [c, b, b, b, b]])
    negative = np.random.default_rng(8).normal(size=differences.shape)
    steerer = fit(ClusterSteerer(scale="mean"), negative + differences, negative, mode, groups)
    assert steerer.selected_groups_ == [[0, 1, 2], [1, 2, 3, 4]]
    np.testing.assert_allclose(steerer.vector_[0], differences[groups <= 2, 0].mean(0))
    np.testing.assert_allclose(steerer.vector_[1], differences[groups >= 1, 1].mean(0))
    assert steerer.group_cosines_.shape == (2, 5, 5)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("threshold", [-0.2, 0.0, 0.3])
def test_cluster_matches_naive_exhaustive_search(layout, threshold):
    tail = LAYOUTS[layout]
    rng = np.random.default_rng(9)
    differences = rng.normal(size=(21, *tail)) + 0.5
    groups = rng.integers(0, 6, size=21)
    steerer = ClusterSteerer(agreement_threshold=threshold, scale="mean")
    steerer.fit(differences, instruction_ids=groups)
    vector, selections = naive_cluster(differences, groups, threshold, tail)
    np.testing.assert_allclose(steerer.vector_, vector)
    expected = selections[0] if layout == "2d" else selections
    assert steerer.selected_groups_ == expected


def test_cluster_picks_the_lowest_groups_on_exact_ties():
    a, b = basis(3, 0), basis(3, 1)
    differences = np.array([a, b, a, b])
    steerer = ClusterSteerer(scale="mean").fit(differences, instruction_ids=[0, 1, 2, 3])
    assert steerer.selected_groups_ == [0, 2]


def test_cluster_prefers_the_more_coherent_of_two_equally_large_sets():
    b, b_near = np.array([1.0, 0.0, 0.0]), np.array([0.8, 0.6, 0.0])
    a, a_near = np.array([0.0, 0.0, 1.0]), np.array([0.0, 0.3, 0.95])
    differences = np.array([b, b_near, a, a_near])
    steerer = ClusterSteerer(scale="mean").fit(differences, instruction_ids=[0, 1, 2, 3])
    assert steerer.selected_groups_ == [2, 3]
    np.testing.assert_allclose(steerer.vector_, (a + a_near) / 2)


def test_cluster_without_agreement_picks_the_most_central_group():
    a, b, c = basis(3, 0), basis(3, 1), basis(3, 2)
    central = (a + b + c) / np.sqrt(3)
    differences = np.array([a, central, b, c])
    steerer = ClusterSteerer(agreement_threshold=0.9, scale="mean")
    steerer.fit(differences, instruction_ids=[0, 1, 2, 3])
    assert steerer.selected_groups_ == [1]
    np.testing.assert_allclose(steerer.vector_, central)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_cluster_without_instruction_ids_equals_pv(layout):
    positive, negative = make_pairs(8, LAYOUTS[layout], seed=10)
    cluster = fit(ClusterSteerer(scale="mean"), positive, negative, "contrast_ids")
    pv = fit(PVSteerer(), positive, negative, "contrast_ids")
    np.testing.assert_allclose(cluster.vector_, pv.vector_)
    np.testing.assert_array_equal(cluster.groups_, [0])


def test_cluster_greedy_path_for_many_groups():
    a = basis(30, 0)
    directions = [a] * 10 + [basis(30, g) for g in range(10, 20)]
    differences, groups = planted_groups([directions], n_per_group=2)
    differences = differences[:, 0]
    steerer = ClusterSteerer(scale="mean").fit(differences, instruction_ids=groups)
    assert steerer.selected_groups_ == list(range(10))
    np.testing.assert_allclose(steerer.vector_, differences[groups < 10].mean(axis=0))


def test_cluster_rejects_pairs_with_two_instruction_ids():
    positive, negative = make_pairs(3, (4,))
    X, y, ids = labelled_by_ids(positive, negative)
    instruction_ids = np.where((ids == 2) & (y == 1), "x", "y")
    with pytest.raises(ValueError, match="instruction_ids differ within contrast 2"):
        ClusterSteerer(scale="mean").fit(X, y, contrast_ids=ids, instruction_ids=instruction_ids)


# --------------------------------------------------------------------------
# transform and decision_function
# --------------------------------------------------------------------------

STEERER_TYPES = [PVSteerer, UnitMeanSteerer, ClusterSteerer, PCASteerer]


@pytest.mark.parametrize("steerer_type", STEERER_TYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_transform_adds_scaled_vector_per_layer(steerer_type, layout):
    tail = LAYOUTS[layout]
    positive, negative = make_pairs(6, tail, seed=11)
    steerer = fit(steerer_type(coefficient=-2.5), positive, negative, "differences")
    X = np.random.default_rng(12).normal(size=(4, *tail))
    X_before = X.copy()
    steered = steerer.transform(X)
    np.testing.assert_array_equal(X, X_before)
    for i in range(len(X)):
        np.testing.assert_allclose(steered[i], X[i] + -2.5 * steerer.vector_)


@pytest.mark.parametrize("steerer_type", STEERER_TYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_decision_function_projects_on_direction(steerer_type, layout):
    tail = LAYOUTS[layout]
    positive, negative = make_pairs(6, tail, seed=13)
    steerer = fit(steerer_type(), positive, negative, "differences")
    X = np.random.default_rng(14).normal(size=(5, *tail))
    scores = steerer.decision_function(X)
    layered_X, layered_direction = as_layered(X), np.reshape(steerer.direction_, (-1, tail[-1]))
    expected = np.array(
        [[x[l] @ layered_direction[l] for l in range(len(layered_direction))] for x in layered_X]
    )
    assert scores.shape == X.shape[:-1]
    np.testing.assert_allclose(scores, expected.reshape(scores.shape))
    np.testing.assert_allclose(
        np.linalg.norm(steerer.direction_, axis=-1), np.ones(tail[:-1])
    )
    order = np.random.default_rng(15).permutation(5)
    np.testing.assert_allclose(steerer.decision_function(X[order]), scores[order])
    np.testing.assert_allclose(steerer.transform(X[order]), steerer.transform(X)[order])


@pytest.mark.parametrize("steerer_type", STEERER_TYPES)
def test_zero_vector_gives_zero_direction(steerer_type):
    steerer = steerer_type().fit(np.zeros((3, 2, 4)))
    np.testing.assert_array_equal(steerer.direction_, np.zeros((2, 4)))
    np.testing.assert_array_equal(steerer.decision_function(np.ones((2, 2, 4))), 0.0)


@pytest.mark.parametrize("steerer_type", STEERER_TYPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float32_and_float64_are_preserved(steerer_type, dtype):
    positive, negative = make_pairs(5, (2, 3), seed=16)
    differences = (positive - negative).astype(dtype)
    steerer = steerer_type().fit(differences)
    assert steerer.vector_.dtype == dtype
    assert steerer.transform(differences).dtype == dtype
    assert steerer.decision_function(differences).dtype == dtype


def test_integer_input_is_computed_in_float64():
    steerer = PVSteerer().fit(np.arange(12).reshape(4, 3))
    assert steerer.vector_.dtype == np.float64


def test_fitted_attributes_for_2d_and_3d():
    positive, negative = make_pairs(4, (3, 5))
    X, y, ids = labelled_by_ids(positive, negative)
    three_d = PVSteerer().fit(X, y, contrast_ids=ids)
    assert (three_d.n_layers_, three_d.n_features_in_, three_d.n_contrasts_) == (3, 5, 4)
    np.testing.assert_array_equal(three_d.classes_, [0, 1])
    two_d = three_d.fit(X[:, 0] - X[:, 1])
    assert (two_d.n_layers_, two_d.n_features_in_) == (None, 5)
    assert not hasattr(two_d, "classes_")


def test_second_class_in_sorted_order_is_positive():
    positive, negative = make_pairs(4, (3,))
    X, y, ids = labelled_by_ids(positive, negative)
    labels = np.where(y == 1, "pos", "neg")
    steerer = PVSteerer().fit(X, labels, contrast_ids=ids)
    np.testing.assert_array_equal(steerer.classes_, ["neg", "pos"])
    np.testing.assert_allclose(steerer.vector_, naive_mean(positive - negative))


# --------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------


def test_2d_fit_then_3d_transform_is_rejected():
    steerer = PVSteerer().fit(np.ones((3, 4)))
    with pytest.raises(ValueError, match=r"fitted on 2-D activations .* X is 3-D"):
        steerer.transform(np.ones((2, 1, 4)))


def test_3d_fit_then_2d_transform_is_rejected():
    steerer = PVSteerer().fit(np.ones((3, 2, 4)))
    with pytest.raises(ValueError, match=r"fitted on 3-D activations .* X is 2-D"):
        steerer.decision_function(np.ones((2, 4)))


def test_wrong_width_is_rejected():
    steerer = PVSteerer().fit(np.ones((3, 4)))
    with pytest.raises(ValueError, match="X has 3 features, but PVSteerer is expecting 4"):
        steerer.transform(np.ones((2, 3)))


def test_wrong_layer_count_is_rejected():
    steerer = PVSteerer().fit(np.ones((3, 2, 4)))
    with pytest.raises(ValueError, match=r"shape \(2, 3, 4\).*n_layers=2, d=4"):
        steerer.transform(np.ones((2, 3, 4)))


@pytest.mark.parametrize("steerer_type", STEERER_TYPES)
def test_more_than_two_classes_is_rejected(steerer_type):
    with pytest.raises(ValueError, match=r"exactly 2 classes .* got 3 class\(es\): \[0, 1, 2\]"):
        steerer_type().fit(np.ones((6, 2)), [0, 1, 2, 0, 1, 2])


def test_continuous_target_is_rejected():
    with pytest.raises(ValueError, match="Unknown label type"):
        PVSteerer().fit(np.ones((4, 2)), [0.1, 0.7, 0.2, 0.5])


def test_contrast_id_with_two_positives_is_named():
    X = np.arange(12.0).reshape(6, 2)
    y = [1, 0, 1, 0, 1, 0]
    with pytest.raises(ValueError, match=r"contrast id 'b' has 2 positive and 0 negative"):
        PVSteerer().fit(X, y, contrast_ids=["a", "a", "b", "c", "b", "c"])


def test_contrast_ids_need_labels():
    with pytest.raises(ValueError, match="contrast_ids pair labelled samples and need y"):
        PVSteerer().fit(np.ones((2, 3)), contrast_ids=[0, 0])


def test_metadata_length_is_checked():
    with pytest.raises(ValueError, match=r"instruction_ids must be .* \(4\); got shape \(3,\)"):
        ClusterSteerer(scale="mean").fit(np.ones((4, 3)), instruction_ids=[0, 1, 2])


def test_non_finite_3d_input_is_rejected():
    X = np.ones((3, 2, 4))
    X[1, 1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        PVSteerer().fit(X)


@pytest.mark.parametrize("steerer_type", [UnitMeanSteerer, ClusterSteerer, PCASteerer])
def test_unbalanced_order_pairing_warns_and_drops_surplus(steerer_type):
    positive, negative = make_pairs(5, (3,), seed=17)
    X = np.concatenate([positive, negative[:3]])
    y = np.repeat([1, 0], [5, 3])
    with pytest.warns(UserWarning, match="only 3 contrasts can be formed"):
        steerer = steerer_type().fit(X, y)
    reference = steerer_type().fit(positive[:3] - negative[:3])
    np.testing.assert_allclose(steerer.vector_, reference.vector_)
    assert steerer.n_contrasts_ == 3


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"coefficient": "strong"}, "coefficient must be an instance of"),
        ({"method": "svd"}, "method must be one of"),
        ({"scale": "norm"}, "scale must be one of"),
    ],
)
def test_invalid_pca_hyperparameters(params, message):
    with pytest.raises((TypeError, ValueError), match=message):
        PCASteerer(**params).fit(np.ones((3, 2)))


def test_invalid_agreement_threshold():
    with pytest.raises(ValueError, match="agreement_threshold == 1.5, must be <= 1"):
        ClusterSteerer(agreement_threshold=1.5).fit(np.ones((3, 2)))


def test_cluster_default_rescales_to_the_pv_norm():
    rng = np.random.default_rng(7)
    shared, other = rng.normal(size=6), rng.normal(size=6)
    groups = np.repeat(np.arange(5), 4)
    differences = np.where((groups < 3)[:, None], shared, 3 * other) + 0.01 * rng.normal(size=(20, 6))
    raw = ClusterSteerer(scale="mean").fit(differences, instruction_ids=groups)
    scaled = ClusterSteerer().fit(differences, instruction_ids=groups)
    np.testing.assert_allclose(scaled.direction_, raw.direction_, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(scaled.vector_), np.linalg.norm(differences.mean(0)), rtol=1e-12)
    with pytest.raises(ValueError, match="scale must be"):
        ClusterSteerer(scale="unit").fit(differences)


def test_cosine_matrices_is_the_one_pair_cosine_matrix_of_cluster_and_diagnostics():
    from steerkit.diagnostics import pair_cosines
    from steerkit.estimators.cluster import cosine_matrices

    rng = np.random.default_rng(18)
    groups = np.repeat(np.arange(4), 3)
    differences = rng.normal(size=(12, 2, 5))
    differences[groups == 3, 1] = 0.0  # group 3 has no mean direction at layer 1
    steerer = ClusterSteerer().fit(differences, instruction_ids=groups)
    diagnostics = pair_cosines(differences, groups)
    np.testing.assert_allclose(diagnostics[0], steerer.group_cosines_[0], atol=1e-12)
    assert np.isnan(diagnostics[1, 3]).all() and np.isnan(diagnostics[1, :, 3]).all()
    assert (steerer.group_cosines_[1, 3] == 0).all() and (steerer.group_cosines_[1, :, 3] == 0).all()
    means = np.stack([differences[groups == g].mean(0) for g in range(4)])
    np.testing.assert_allclose(cosine_matrices(means, undefined=np.nan), diagnostics, atol=1e-12)
