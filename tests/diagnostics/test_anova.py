"""Two-way ANOVA of unit difference vectors: statsmodels agreement, known answers, grids."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from statsmodels.stats.anova import anova_lm

from steerkit.diagnostics import anova_eta_squared

N_QUESTIONS, N_PAIRS = 6, 5


def grid(n_questions=N_QUESTIONS, n_pairs=N_PAIRS):
    return np.repeat(np.arange(n_questions), n_pairs), np.tile(np.arange(n_pairs), n_questions)


def statsmodels_sums_of_squares(units, questions, pairs):
    """SS of pair, question and residual from per-dimension OLS ANOVAs, summed over dimensions."""
    totals = pd.Series(0.0, index=["C(pair)", "C(question)", "Residual"])
    for column in units.T:
        frame = pd.DataFrame({"value": column, "pair": pairs, "question": questions})
        table = anova_lm(smf.ols("value ~ C(pair) + C(question)", data=frame).fit(), typ=2)
        totals += table["sum_sq"]
    return totals


def test_matches_statsmodels_on_one_layer():
    rng = np.random.default_rng(0)
    questions, pairs = grid()
    D = rng.normal(size=(questions.size, 4)) + rng.normal(size=(N_PAIRS, 4))[pairs]
    units = D / np.linalg.norm(D, axis=1, keepdims=True)
    expected = statsmodels_sums_of_squares(units, questions, pairs)
    row = anova_eta_squared(D, questions, pairs).iloc[0]
    assert row.ss_prompt == pytest.approx(expected["C(pair)"], rel=1e-9)
    assert row.ss_question == pytest.approx(expected["C(question)"], rel=1e-9)
    assert row.ss_interaction == pytest.approx(expected["Residual"], rel=1e-9)
    assert row.ss_total == pytest.approx(expected.sum(), rel=1e-9)
    assert row.eta2_prompt + row.eta2_question + row.eta2_interaction == pytest.approx(1.0)


def test_layers_are_independent_and_order_free():
    rng = np.random.default_rng(1)
    questions, pairs = grid()
    D = rng.normal(size=(questions.size, 3, 4))
    table = anova_eta_squared(D, questions, pairs)
    assert list(table.layer) == [0, 1, 2] and (table.n_questions == N_QUESTIONS).all()
    for layer in range(3):
        single = anova_eta_squared(D[:, layer], questions, pairs).iloc[0]
        assert table.loc[layer, "eta2_question"] == pytest.approx(single.eta2_question)
    order = rng.permutation(questions.size)
    shuffled = anova_eta_squared(D[order], questions[order] + 100, pairs[order] * 3)
    np.testing.assert_allclose(shuffled.filter(like="eta2").to_numpy(), table.filter(like="eta2").to_numpy())


def test_question_only_data_has_question_eta_near_one():
    rng = np.random.default_rng(2)
    questions, pairs = grid()
    D = rng.normal(size=(N_QUESTIONS, 2, 16))[questions] + 1e-3 * rng.normal(size=(questions.size, 2, 16))
    table = anova_eta_squared(D, questions, pairs)
    assert (table.eta2_question > 0.99).all()
    assert (table.eta2_prompt < 0.01).all()


def test_incomplete_questions_are_dropped_with_a_warning():
    rng = np.random.default_rng(3)
    questions, pairs = grid()
    D = rng.normal(size=(questions.size, 2, 4))
    keep = ~((questions == 2) & (pairs == 4))
    with pytest.warns(UserWarning, match=r"dropping 1 of 6 questions.*\[2\]"):
        table = anova_eta_squared(D[keep], questions[keep], pairs[keep])
    complete = questions != 2
    expected = anova_eta_squared(D[complete], questions[complete], pairs[complete])
    pd.testing.assert_frame_equal(table, expected)


def test_zero_difference_leaves_its_question_out_at_that_layer_only():
    rng = np.random.default_rng(4)
    questions, pairs = grid()
    D = rng.normal(size=(questions.size, 2, 4))
    D[0, 0] = 0.0  # question 0, pair 0, layer 0
    table = anova_eta_squared(D, questions, pairs)
    assert list(table.n_questions) == [N_QUESTIONS - 1, N_QUESTIONS]
    others = questions != 0
    expected = anova_eta_squared(D[others, 0], questions[others], pairs[others]).iloc[0]
    assert table.loc[0, "eta2_question"] == pytest.approx(expected.eta2_question)


def test_repeated_cells_raise_and_degenerate_grids_give_nan():
    questions, pairs = grid()
    D = np.random.default_rng(5).normal(size=(questions.size, 4))
    with pytest.raises(ValueError, match="repeated"):
        anova_eta_squared(D, questions, np.zeros_like(pairs))
    one_question = questions == 0
    assert np.isnan(anova_eta_squared(D[one_question], questions[one_question], pairs[one_question]).eta2_prompt).all()
    identical = D[:1] * np.linspace(0.5, 2.0, questions.size)[:, None]  # one direction, many norms
    assert np.isnan(anova_eta_squared(identical, questions, pairs).eta2_question).all()
    with pytest.raises(ValueError, match="shape"):
        anova_eta_squared(D, questions[:-1], pairs)


def float64_grid_sums_of_squares(D, questions, pairs):
    """Straightforward float64 ANOVA on the explicit (Q, P, L, d) grid of unit differences."""
    units = D / np.linalg.norm(D, axis=-1, keepdims=True)
    grid = np.zeros((questions.max() + 1, pairs.max() + 1) + D.shape[1:])
    grid[questions, pairs] = units
    grand = grid.mean(axis=(0, 1))
    n_questions, n_pairs = grid.shape[:2]
    total = ((grid - grand) ** 2).sum(axis=(0, 1, 3))
    prompt = n_questions * ((grid.mean(axis=0) - grand) ** 2).sum(axis=(0, 2))
    question = n_pairs * ((grid.mean(axis=1) - grand) ** 2).sum(axis=(0, 2))
    return {"total": total, "prompt": prompt, "question": question, "interaction": total - prompt - question}


def test_float32_differences_need_no_float64_grid_and_match_it():
    rng = np.random.default_rng(6)
    questions, pairs = grid(n_questions=200)
    D = (rng.normal(size=(200, 3, 256))[questions] + rng.normal(size=(N_PAIRS, 3, 256))[pairs]
         + rng.normal(size=(questions.size, 3, 256))).astype(np.float32)
    order = rng.permutation(questions.size)
    D, questions, pairs = D[order], questions[order], pairs[order]
    tracemalloc.start()
    try:
        table = anova_eta_squared(D, questions, pairs)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * D.nbytes  # float64 units alone would be 2 ×, with the float64 grid 4 ×
    expected = float64_grid_sums_of_squares(D.astype(np.float64), questions, pairs)
    cells = questions.size
    for effect, values in expected.items():  # SS per cell lie in [0, 2]: an absolute tolerance per cell
        np.testing.assert_allclose(table[f"ss_{effect}"] / cells, values / cells, atol=1e-5)
