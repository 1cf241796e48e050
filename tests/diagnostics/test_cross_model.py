"""Cross-model geometry: concept-similarity matrices and their Spearman/Pearson/Mantel comparison."""

import numpy as np
import pytest
from scipy.stats import ortho_group

from steerkit.diagnostics.cross_model import compare_similarity, concept_similarity, depth_layer


def _from_upper(values):
    """Symmetric matrix with unit diagonal whose upper triangle (row-major) is ``values``."""
    k = int((1 + np.sqrt(1 + 8 * len(values))) / 2)
    matrix = np.eye(k)
    matrix[np.triu_indices(k, 1)] = values
    return matrix + np.triu(matrix, 1).T


def test_similarity_is_the_cosine_matrix_at_the_relative_depth():
    vectors = np.zeros((3, 5, 2))  # 3 concepts, L + 1 = 5 layers
    vectors[:, 2] = [[1, 0], [3, 3], [0, -2]]  # depth 0.5 -> layer 2
    vectors[:, [0, 1, 3, 4]] = 1.0
    expected = np.array([[1, 2**-0.5, 0], [2**-0.5, 1, -(2**-0.5)], [0, -(2**-0.5), 1]])
    np.testing.assert_allclose(concept_similarity(vectors, depth=0.5), expected, atol=1e-12)
    assert depth_layer(19, 2 / 3) == 12 and depth_layer(31, 2 / 3) == 20


def test_known_rank_correlation():
    a = _from_upper([0.1, 0.2, 0.3])
    b = _from_upper([0.1, 0.9, 0.5])  # ranks 1,3,2 against 1,2,3: rho = 1 - 6*2/(3*8) = 0.5
    result = compare_similarity(a, b)
    assert result.spearman == pytest.approx(0.5)
    assert result.pearson == pytest.approx(np.corrcoef([0.1, 0.2, 0.3], [0.1, 0.9, 0.5])[0, 1])
    reversed_b = _from_upper([0.3, 0.2, 0.1])
    assert compare_similarity(a, reversed_b).spearman == pytest.approx(-1.0)


def test_rotating_one_models_space_leaves_the_comparison_unchanged():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(6, 32))
    other = vectors + 0.5 * rng.normal(size=vectors.shape)  # a second, noisier model
    rotated = other @ ortho_group.rvs(32, random_state=1) * 7.0  # rotate and rescale its space
    plain = compare_similarity(concept_similarity(vectors), concept_similarity(other))
    turned = compare_similarity(concept_similarity(vectors), concept_similarity(rotated))
    assert turned.spearman == pytest.approx(plain.spearman) and turned.pearson == pytest.approx(plain.pearson)
    assert turned.p_value == pytest.approx(plain.p_value)


def test_mantel_p_value_is_exact_for_few_concepts_and_small_for_shared_geometry():
    rng = np.random.default_rng(2)
    a = concept_similarity(rng.normal(size=(4, 16)))
    exact = compare_similarity(a, a)  # distinct cosines: only the identity order reaches rho = 1
    assert exact.exact and exact.n_permutations == 24 and exact.p_value == pytest.approx(1 / 24)
    shared = rng.normal(size=(9, 16))
    sampled = compare_similarity(concept_similarity(shared), concept_similarity(shared + 0.2 * rng.normal(size=(9, 16))),
                                 n_permutations=999)
    assert not sampled.exact and sampled.p_value < 0.01
    unrelated = compare_similarity(concept_similarity(rng.normal(size=(9, 16))), concept_similarity(shared),
                                   n_permutations=999)
    assert unrelated.p_value > 0.01


def test_mismatched_inputs_are_refused():
    with pytest.raises(ValueError, match="same k >= 3"):
        compare_similarity(np.eye(3), np.eye(4))
    with pytest.raises(ValueError, match="need depth="):
        concept_similarity(np.ones((3, 4, 2)))
    with pytest.raises(ValueError, match="is zero"):
        concept_similarity([[1.0, 0.0], [0.0, 0.0]])
