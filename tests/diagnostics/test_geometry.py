"""GRACE geometry statistics: brute-force agreement, known answers, linear cost, the report."""

from __future__ import annotations

import itertools
import tracemalloc

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from steerkit.activations import ActivationSet
from steerkit.diagnostics import (
    alignment,
    block_structure,
    block_structure_share,
    concept_granularity,
    geometry_report,
    granularity,
    magnitude_cv,
    pair_cosines,
    profile_correlation,
    within_question_agreement,
)
from steerkit.diagnostics.geometry import group_sums, unit_differences

N_QUESTIONS, N_PAIRS = 4, 5


# -- brute force ------------------------------------------------------------------------------
def cosine(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def brute_mean_cosine(vectors):
    return np.mean([cosine(a, b) for a, b in itertools.combinations(vectors, 2)])


def brute_alignment(D):
    return np.array([brute_mean_cosine(D[:, layer]) for layer in range(D.shape[1])])


def brute_gamma(D, question_ids):
    return np.array([
        np.mean([brute_mean_cosine(D[question_ids == q, layer]) for q in np.unique(question_ids)])
        for layer in range(D.shape[1])
    ])


def grid_ids(n_questions=N_QUESTIONS, n_pairs=N_PAIRS):
    """Question and instruction ids of a full (question × pair) grid, question-major."""
    return np.repeat(np.arange(n_questions), n_pairs), np.tile(np.arange(n_pairs), n_questions)


@pytest.fixture
def random_D():
    return np.random.default_rng(0).normal(size=(N_QUESTIONS * N_PAIRS, 3, 8))


def test_alignment_matches_pairwise_loop(random_D):
    np.testing.assert_allclose(alignment(random_D), brute_alignment(random_D), atol=1e-12)


def test_gamma_and_granularity_match_pairwise_loops(random_D):
    rng = np.random.default_rng(1)
    D = random_D + 0.8 * rng.normal(size=(N_QUESTIONS, 3, 8)).repeat(N_PAIRS, axis=0)  # agreement per question
    questions, _ = grid_ids()
    gamma = brute_gamma(D, questions)
    np.testing.assert_allclose(within_question_agreement(D, questions), gamma, atol=1e-12)
    np.testing.assert_allclose(granularity(D, questions), gamma / brute_alignment(D), rtol=1e-10)


def test_gamma_handles_unequal_unsorted_groups():
    rng = np.random.default_rng(2)
    D = rng.normal(size=(9, 2, 5))
    questions = np.array([7, 3, 7, 3, 3, 9, 7, 7, 3])  # question 9 has a single contrast
    expected = brute_gamma(D[questions != 9], questions[questions != 9])
    np.testing.assert_allclose(within_question_agreement(D, questions), expected, atol=1e-12)


def test_pair_cosines_match_loop(random_D):
    _, pairs = grid_ids()
    result = pair_cosines(random_D, pairs)
    assert result.shape == (3, N_PAIRS, N_PAIRS)
    for layer, p, q in itertools.product(range(3), range(N_PAIRS), range(N_PAIRS)):
        expected = cosine(random_D[pairs == p, layer].mean(0), random_D[pairs == q, layer].mean(0))
        assert result[layer, p, q] == pytest.approx(expected, abs=1e-12)


def test_two_dimensional_input_is_one_layer(random_D):
    assert alignment(random_D[:, 1]).shape == (1,)
    assert alignment(random_D[:, 1])[0] == pytest.approx(alignment(random_D)[1])


def test_zero_vectors_are_left_out_of_unit_statistics(random_D):
    D = random_D.copy()
    D[:3, 0] = 0.0
    D[:, 2] = 0.0
    assert alignment(D)[0] == pytest.approx(brute_mean_cosine(D[3:, 0]))
    assert np.isnan(alignment(D)[2]) and np.isnan(within_question_agreement(D, grid_ids()[0])[2])
    assert np.isnan(granularity(D, grid_ids()[0])[2])
    assert np.isnan(alignment(D[:1])).all()  # fewer than two contrasts


def test_granularity_is_undefined_for_non_positive_alignment():
    D = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])  # alignment -1/3
    questions = np.array([0, 0, 1, 1])
    assert alignment(D)[0] == pytest.approx(-1 / 3)
    assert np.isnan(granularity(D, questions)).all()
    assert np.isnan(concept_granularity(D, questions))


# -- known answers ----------------------------------------------------------------------------
def shared_direction(rng, n_layers=4, d=32, noise=0.1):
    direction = rng.normal(size=(1, n_layers, d))
    return direction + noise * rng.normal(size=(N_QUESTIONS * N_PAIRS, n_layers, d))


def test_one_shared_direction_gives_high_alignment_and_unit_granularity():
    rng = np.random.default_rng(3)
    D = shared_direction(rng)
    questions, _ = grid_ids()
    assert (alignment(D) > 0.9).all()
    assert 0.9 < concept_granularity(D, questions) < 1.1


def test_direction_rotating_across_questions_gives_high_granularity():
    rng = np.random.default_rng(4)
    d, n_layers = 64, 4
    shared = rng.normal(size=(1, n_layers, d))
    per_question = rng.normal(size=(N_QUESTIONS * 5, n_layers, d)) * 2.5 + shared  # cos between questions ≈ 0.14
    D = per_question.repeat(N_PAIRS, axis=0) + 0.05 * rng.normal(size=(N_QUESTIONS * 5 * N_PAIRS, n_layers, d))
    questions = np.repeat(np.arange(N_QUESTIONS * 5), N_PAIRS)
    assert concept_granularity(D, questions) > 3
    assert (within_question_agreement(D, questions) > 0.95).all()


def planted_blocks(agreeing_pairs: int, n_layers=4, d=32, noise=0.05):
    """Pairs below ``agreeing_pairs`` share direction a; the others point along orthogonal b."""
    rng = np.random.default_rng(5)
    a, b = np.eye(d)[0], np.eye(d)[1]
    questions, pairs = grid_ids()
    directions = np.where((pairs < agreeing_pairs)[:, None], a, b)
    D = directions[:, None, :] + noise * rng.normal(size=(pairs.size, n_layers, d))
    return D, pairs


def test_planted_outlier_pair_is_block_structure_on_every_layer():
    D, pairs = planted_blocks(agreeing_pairs=4)
    cosines = pair_cosines(D, pairs)
    assert block_structure(cosines).all()
    assert block_structure_share(cosines) == 1.0


def test_all_pairs_agreeing_is_no_block_structure():
    D, pairs = planted_blocks(agreeing_pairs=5)
    cosines = pair_cosines(D, pairs)
    assert not block_structure(cosines).any()
    assert block_structure_share(cosines) == 0.0


def test_block_structure_rules():
    agree = np.full((4, 4), 0.9)
    np.fill_diagonal(agree, 1.0)
    one_low = agree.copy()
    one_low[0, 1] = one_low[1, 0] = 0.1  # pair 0 is low to only one other
    two_low = one_low.copy()
    two_low[0, 2] = two_low[2, 0] = 0.1
    loose_rest = two_low.copy()
    loose_rest[1:, 1:] = np.where(np.eye(3, dtype=bool), 1.0, 0.6)  # remaining mean 0.6 < 0.7
    undefined = two_low.copy()
    undefined[3, 3] = np.nan  # a zero pair mean: never qualifies
    undefined[1, 3] = undefined[3, 1] = np.nan
    flags = block_structure(np.stack([agree, one_low, two_low, loose_rest, undefined]))
    np.testing.assert_array_equal(flags, [False, False, True, False, False])
    assert block_structure(two_low).shape == ()
    assert block_structure_share(np.stack([agree, two_low]), layers=[1]) == 1.0


# -- magnitudes and profiles ------------------------------------------------------------------
def test_magnitude_cv_matches_numpy(random_D):
    norms = np.linalg.norm(random_D, axis=-1)
    np.testing.assert_allclose(magnitude_cv(random_D), norms.std(0) / norms.mean(0), rtol=1e-12)
    assert np.isnan(magnitude_cv(np.zeros((3, 2, 4)))).all()


def test_profile_correlation_matches_pearsonr():
    rng = np.random.default_rng(6)
    a, b = rng.normal(size=12), rng.normal(size=12)
    assert profile_correlation(a, b) == pytest.approx(stats.pearsonr(a, b)[0], abs=1e-12)
    a[0], b[3] = np.nan, np.nan
    keep = np.isfinite(a) & np.isfinite(b)
    assert profile_correlation(a, b) == pytest.approx(stats.pearsonr(a[keep], b[keep])[0], abs=1e-12)
    layers = range(4, 12)
    assert profile_correlation(a, b, layers=layers) == pytest.approx(stats.pearsonr(a[4:], b[4:])[0], abs=1e-12)


def test_profile_correlation_undefined_cases():
    assert np.isnan(profile_correlation([1.0, 2.0], [3.0, 1.0]))
    assert np.isnan(profile_correlation([1.0, np.nan, 2.0, 3.0], [1.0, 2.0, np.nan, 3.0]))
    assert np.isnan(profile_correlation([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))


# -- cost -------------------------------------------------------------------------------------
def test_alignment_and_gamma_use_linear_memory():
    n, n_layers, d = 20_000, 4, 64
    D = np.random.default_rng(7).normal(size=(n, n_layers, d))
    questions = np.arange(n) // 5
    tracemalloc.start()
    try:
        align = alignment(D)
        gamma = within_question_agreement(D, questions)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < n * n * 8 / 20  # an n × n float64 matrix would take 3.2 GB; D itself is 41 MB
    assert np.abs(align).max() < 0.01 and np.isfinite(gamma).all()


# -- the report -------------------------------------------------------------------------------
def synthetic_activation_set(n_layers: int = 6, d: int = 16, seed: int = 0) -> ActivationSet:
    """4 questions × 5 pairs × (pos, neg): a shared PL direction, RA pair 4 off on its own."""
    rng = np.random.default_rng(seed)
    questions, pairs = grid_ids()
    n_contrasts = questions.size
    base = rng.normal(size=(n_contrasts, n_layers, d))
    growing = np.eye(d)[0] * np.linspace(0.5, 3.0, n_layers)[:, None]
    pl_diff = growing + 0.5 * rng.normal(size=(n_contrasts, n_layers, d))
    pl_diff[:, 0] = 0.0  # embedding output: same last prompt token
    ra_diff = np.where((pairs < 4)[:, None, None], np.eye(d)[1], np.eye(d)[2]) * 2.0
    ra_diff = ra_diff + 0.3 * rng.normal(size=(n_contrasts, n_layers, d))
    activations = {name: np.concatenate([base + diff, base])
                   for name, diff in (("prompt_last", pl_diff), ("prompt_avg", pl_diff), ("response_avg", ra_diff))}
    contrast_ids = np.arange(n_contrasts)
    return ActivationSet(
        activations, y=np.r_[np.ones(n_contrasts), np.zeros(n_contrasts)],
        question_ids=np.tile(questions, 2), instruction_ids=np.tile(pairs, 2), contrast_ids=np.tile(contrast_ids, 2),
    )


def test_geometry_report_tables_and_summary():
    aset = synthetic_activation_set()
    report = geometry_report(aset)
    table = report.layers
    assert list(table["layer"]) == list(range(6))
    assert {"layer", "alignment_pl", "alignment_ra", "gamma_pl", "granularity_pl", "magnitude_cv_ra",
            "block_structure", "in_summary", "eta2_question"} <= set(table.columns)
    assert list(table["in_summary"]) == [False] + [True] * 5
    assert np.isnan(table.loc[0, "alignment_pl"])  # zero PL differences at the embedding
    assert report.pair_cosines.shape == (6, N_PAIRS, N_PAIRS)
    np.testing.assert_array_equal(report.pair_ids, np.arange(N_PAIRS))
    assert report.magnitudes.shape == (20, 6)
    assert report.anova.shape[0] == 6

    summary = report.summary
    expected_keys = {"alignment_pl_max", "alignment_pl_best_layer", "alignment_ra_max", "granularity", "magnitude_cv",
                     "pl_ra_correlation", "block_structure_share", "block_structure_detected", "eta2_prompt",
                     "eta2_question", "eta2_interaction", "n_contrasts", "n_questions", "n_pairs", "n_layers"}
    assert expected_keys <= set(summary)
    assert (summary["n_contrasts"], summary["n_questions"], summary["n_pairs"], summary["n_layers"]) == (20, 4, 5, 6)
    assert summary["block_structure_share"] == 1.0 and summary["block_structure_detected"] is True
    assert summary["alignment_pl_best_layer"] == 5  # the shared PL component grows with depth
    assert summary["eta2_prompt"] > 0.5  # RA differences are set by the pair
    assert all(np.isscalar(v) or v is None for v in summary.values())

    d_pl = aset.differences("prompt_last")
    np.testing.assert_allclose(table["alignment_pl"], alignment(d_pl), equal_nan=True)
    questions, _ = grid_ids()
    assert summary["granularity"] == pytest.approx(concept_granularity(d_pl, questions, layers=range(1, 6)))


def test_report_top_layers_and_long_frame():
    report = geometry_report(synthetic_activation_set(n_layers=8))
    top = report.top_alignment_layers(3)
    assert len(top) == 3 and 0 not in top
    assert top[0] == report.summary["alignment_pl_best_layer"]
    assert list(report.top_alignment_layers(50)) == list(
        report.layers[report.layers.layer > 0].sort_values("alignment_pl", ascending=False).layer)
    long = report.to_frame()
    assert set(long.columns) == {"layer", "in_summary", "statistic", "value"}
    assert len(long) == 8 * (report.layers.shape[1] - 2)
    assert isinstance(long, pd.DataFrame)


def test_report_can_keep_embedding_layer():
    report = geometry_report(synthetic_activation_set(), skip_embedding=False)
    assert report.layers["in_summary"].all()
    assert report.summary["block_structure_share"] == 1.0


# -- float32 fast path ------------------------------------------------------------------------
FLOAT32_ATOL = 1e-5
"""float32 statistics against float64 ones: cosines and their means agree to this (absolute)."""


def float64_statistics(D, questions, pairs):
    """Straightforward float64 alignment, γ, pair cosines and magnitude CV, with n × n matrices."""
    units = D / np.linalg.norm(D, axis=-1, keepdims=True)
    gram = np.einsum("ild,jld->lij", units, units)

    def mean_off_diagonal(rows):
        block = gram[:, rows][:, :, rows]
        k = block.shape[-1]
        return (block.sum(axis=(1, 2)) - np.trace(block, axis1=1, axis2=2)) / (k * (k - 1))

    means = np.stack([D[pairs == p].mean(0) for p in np.unique(pairs)])
    mean_units = means / np.linalg.norm(means, axis=-1, keepdims=True)
    norms = np.linalg.norm(D, axis=-1)
    return {"alignment": mean_off_diagonal(np.arange(D.shape[0])),
            "gamma": np.mean([mean_off_diagonal(np.flatnonzero(questions == q)) for q in np.unique(questions)], axis=0),
            "pair_cosines": np.einsum("pld,qld->lpq", mean_units, mean_units), "cv": norms.std(0) / norms.mean(0)}


def test_float32_input_is_computed_in_float32_and_matches_float64():
    rng = np.random.default_rng(8)
    questions, pairs = grid_ids(n_questions=60)
    D = (rng.normal(size=(1, 3, 64)) + rng.normal(size=(60, 3, 64))[questions] + rng.normal(size=(5, 3, 64))[pairs]
         + rng.normal(size=(questions.size, 3, 64))).astype(np.float32)
    assert unit_differences(D)[0].dtype == np.float32
    expected = float64_statistics(D.astype(np.float64), questions, pairs)
    np.testing.assert_allclose(alignment(D), expected["alignment"], atol=FLOAT32_ATOL)
    np.testing.assert_allclose(within_question_agreement(D, questions), expected["gamma"], atol=FLOAT32_ATOL)
    np.testing.assert_allclose(pair_cosines(D, pairs), expected["pair_cosines"], atol=FLOAT32_ATOL)
    np.testing.assert_allclose(magnitude_cv(D), expected["cv"], rtol=FLOAT32_ATOL)


def test_group_sums_of_float32_need_no_float64_copy_and_keep_float64_accuracy():
    values = np.full((100_000, 64), 0.1, dtype=np.float32)
    groups = np.arange(values.shape[0]) % 2
    tracemalloc.start()
    try:
        sums = group_sums(values, groups, 2)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < values.nbytes / 2  # a float64 copy would be 2 × values.nbytes
    assert sums.dtype == np.float64
    np.testing.assert_allclose(sums, 50_000 * np.float64(np.float32(0.1)), rtol=1e-6)  # float32 running sum: 1e-3 off


def test_float32_report_does_not_copy_activations_to_float64():
    n, rng = 2_000, np.random.default_rng(9)
    big = ActivationSet({name: rng.normal(size=(2 * n, 4, 256)).astype(np.float32)
                         for name in ("prompt_last", "response_avg")},
                        y=np.r_[np.ones(n), np.zeros(n)], question_ids=np.tile(np.arange(n) // 5, 2),
                        instruction_ids=np.tile(np.arange(n) % 5, 2), contrast_ids=np.tile(np.arange(n), 2))
    one_position = n * 4 * 256 * 4  # bytes of one position's float32 differences
    tracemalloc.start()
    try:
        geometry_report(big)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2.5 * one_position  # a float64 copy alone would be 2 ×
