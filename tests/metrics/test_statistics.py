"""Bootstrap intervals over questions and paired differences, against independent computations."""

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.power import NormalIndPower

from steerkit.metrics import (
    SmallSampleWarning,
    bootstrap_ci,
    bootstrap_table,
    minimum_detectable_effect,
    paired_difference,
)


def test_bootstrap_interval_matches_the_normal_theory_interval_of_a_mean():
    scores = np.random.default_rng(0).normal(50, 10, size=400)
    interval = bootstrap_ci(scores, n_resamples=4000)
    t_low, t_high = stats.t.interval(0.95, len(scores) - 1, loc=scores.mean(), scale=stats.sem(scores))
    assert interval.estimate == pytest.approx(scores.mean()) and interval.n == 400
    assert interval.low == pytest.approx(t_low, abs=0.15) and interval.high == pytest.approx(t_high, abs=0.15)


def test_bootstrap_is_seeded_and_leaves_missing_scores_out():
    scores = [10.0, np.nan, 30.0, 20.0, np.nan, 60.0]
    assert bootstrap_ci(scores, seed=3) == bootstrap_ci(scores, seed=3)
    assert bootstrap_ci(scores, seed=3) == bootstrap_ci([10.0, 30.0, 20.0, 60.0], seed=3)
    assert bootstrap_ci(scores).n == 4
    one = bootstrap_ci([5.0, np.nan])
    assert one.estimate == 5.0 and one.n == 1 and np.isnan(one.low) and np.isnan(one.high)


def test_bootstrap_table_gives_every_score_column_its_interval():
    table = pd.DataFrame({"question": list("abcd"), "coherence": [80.0, 90.0, 70.0, 60.0], "kl_bits": [0, 1, 2, 3]})
    result = bootstrap_table(table, seed=1)
    assert list(result.index) == ["coherence", "kl_bits"]
    assert tuple(result.loc["coherence"]) == tuple(bootstrap_ci(table["coherence"], seed=1))
    with pytest.raises(ValueError, match=r"columns \['utility'\] are not in the score table"):
        bootstrap_table(table, ["utility"])


def test_minimum_detectable_effect_matches_statsmodels_power_analysis():
    differences = np.random.default_rng(1).normal(0, 4, size=50)
    # one-sample z-test; statsmodels also counts the (negligible) opposite tail, hence rel=1e-4
    effect_size = NormalIndPower().solve_power(nobs1=50, alpha=0.05, power=0.8, ratio=0)
    assert minimum_detectable_effect(differences) == pytest.approx(effect_size * differences.std(ddof=1), rel=1e-4)


def test_pairing_resolves_a_constant_shift_that_question_variance_would_hide():
    base = np.random.default_rng(2).normal(50, 20, size=30)  # questions differ a lot
    shifted = base + 2.0 + np.random.default_rng(3).normal(0, 0.5, size=30)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SmallSampleWarning)
        result = paired_difference(shifted, base)
    assert result.resolved and result.n == 30 and 1.5 < result.low < 2.0 < result.high < 2.5
    # unpaired, the two means' intervals overlap almost entirely
    assert bootstrap_ci(shifted).low < bootstrap_ci(base).high


def test_small_n_false_positive_warns_and_large_n_resolves():
    """Seed 001: +15 points at n = 20 with noisy per-question scores is not evidence."""
    rng = np.random.default_rng(4)
    before = rng.integers(0, 2, size=20) * 100.0
    after = before.copy()
    after[:3] = 100.0 - after[:3]  # a few questions flip
    with pytest.warns(SmallSampleWarning, match=r"n = 20 questions cannot tell the difference .*use more questions"):
        small = paired_difference(after, before, label="steered - unsteered accuracy")
    assert not small.resolved and small.minimum_detectable > abs(small.difference)
    big_before = rng.normal(50, 10, size=400)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SmallSampleWarning)
        assert paired_difference(big_before + 3 + rng.normal(0, 5, size=400), big_before).resolved


def test_paired_difference_needs_matching_scores():
    with pytest.raises(ValueError, match="first has 3 scores and second 2"):
        paired_difference([1, 2, 3], [1, 2])
    with pytest.warns(SmallSampleWarning, match="1 paired question"):
        assert paired_difference([1.0, np.nan], [0.0, 2.0]).n == 1
