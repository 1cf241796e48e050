import numpy as np
import pytest

from steerkit.activations import ActivationSet
from steerkit.diagnostics.recommender import GraceRecommender
from steerkit.estimators import ClusterSteerer, PVSteerer, UnitMeanSteerer

N_Q, N_P, N_L, D = 6, 5, 20, 24


def planted_set(*, blocks=False, ra_follows_pl=True, magnitude_spread=0.0, seed=0):
    """Contrasts whose geometry is planted: PL alignment grows with depth; RA either grows
    the same way or peaks early; optional instruction-pair blocks and magnitude spread."""
    rng = np.random.default_rng(seed)
    q, p = np.repeat(np.arange(N_Q), N_P), np.tile(np.arange(N_P), N_Q)
    n = q.size
    depth = np.linspace(0, 1, N_L)
    pl_signal = 0.2 + 2.5 * depth
    ra_signal = pl_signal if ra_follows_pl else 2.7 - 2.5 * depth
    e = np.eye(D)
    ra_dir = np.where(((p == 4) & blocks)[:, None], e[2], e[1])
    scale = np.exp(magnitude_spread * rng.normal(size=n))[:, None, None]
    pl = e[0] * pl_signal[None, :, None] + 0.3 * rng.normal(size=(n, N_L, D))
    ra = scale * (ra_dir[:, None, :] * ra_signal[None, :, None] + 0.3 * rng.normal(size=(n, N_L, D)))
    base = rng.normal(size=(n, N_L, D))
    acts = {"prompt_last": np.concatenate([base + pl, base]), "response_avg": np.concatenate([base + ra, base])}
    return ActivationSet(acts, np.r_[np.ones(n), np.zeros(n)], np.tile(q, 2), np.tile(p, 2), np.tile(np.arange(n), 2))


def test_consistent_geometry_gives_pv_on_top_pl_layers():
    rec = GraceRecommender().fit(planted_set())
    r = rec.recommendation_
    assert r.construction == "pv" and r.search_space == "top15_pl" and not r.pilot
    assert r.layers == sorted(r.layers) and len(r.layers) == 15
    assert set(r.layers) == set(range(N_L - 15, N_L))  # PL alignment grows with depth
    assert isinstance(rec.best_estimator_, PVSteerer) and rec.best_estimator_.vector_.shape == (N_L, D)
    assert any("pv" in reason for reason in r.reasons)


def test_disagreeing_profiles_widen_the_search_to_the_union():
    r = GraceRecommender().fit(planted_set(ra_follows_pl=False)).recommendation_
    assert r.search_space == "union_pl_ra"
    assert r.statistics["pl_ra_correlation"] < 0.2
    assert len(r.layers) > 15 and set(range(1, 4)) <= set(r.layers)  # early RA layers join


def test_blocks_choose_cluster_and_magnitudes_choose_unit_mean():
    rec = GraceRecommender().fit(planted_set(blocks=True))
    assert rec.recommendation_.construction == "cluster" and isinstance(rec.best_estimator_, ClusterSteerer)
    spread = planted_set(magnitude_spread=1.0)
    assert GraceRecommender().fit(spread).recommendation_.construction == "pv"  # rule off by default
    rec = GraceRecommender(magnitude_cv_threshold=0.45).fit(spread)
    assert rec.recommendation_.construction == "unit_mean" and isinstance(rec.best_estimator_, UnitMeanSteerer)
    assert rec.recommendation_.statistics["magnitude_cv"] > 0.45


def test_ambiguous_blocks_advise_a_pilot():
    rec = GraceRecommender(cluster_share=1.01, pilot_share=0.5).fit(planted_set(blocks=True))
    assert rec.recommendation_.pilot and rec.recommendation_.construction == "pv"


def test_budget_grows_with_granularity():
    low = GraceRecommender(granularity_levels=(10.0, 20.0)).fit(planted_set()).recommendation_
    high = GraceRecommender(granularity_levels=(0.0, 0.01)).fit(planted_set()).recommendation_
    assert low.n_trials == 50 and high.n_trials == 120


def test_transform_and_search_use_the_recommendation(tiny_llama):
    from steerkit.metrics import make_steer_scorer
    from steerkit.model_selection import TPESearchSteer

    aset = planted_set()
    rec = GraceRecommender(coefficient=2.0).fit(aset)
    X = aset.X("response_avg")
    np.testing.assert_allclose(rec.transform(X), X + 2.0 * rec.best_estimator_.vector_, rtol=1e-6)
    search = rec.make_search(tiny_llama, make_steer_scorer(lambda q, r: 50.0), n_trials=3, random_state=0)
    assert isinstance(search, TPESearchSteer)
    assert search.param_distributions["layer"] == rec.recommendation_.layers
    assert search.n_trials == 3 and isinstance(search.estimator.steerer, PVSteerer)
    with pytest.raises(Exception):
        search.estimator.steerer.vector_  # the search gets an unfitted clone
