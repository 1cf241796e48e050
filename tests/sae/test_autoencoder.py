"""SparseAutoencoder on a planted dictionary: recovery, decoder norms, TopK L0, resampling."""

import numpy as np
import pytest

from steerkit.sae import SparseAutoencoder
from steerkit.sae.metrics import sae_metrics


def planted(n=8000, d=32, n_atoms=64, k=3, noise=0.01, seed=0):
    """Rows = k-sparse positive combinations of a known random unit dictionary (n_atoms, d) + offset + noise."""
    rng = np.random.default_rng(seed)
    atoms = rng.normal(size=(n_atoms, d))
    atoms /= np.linalg.norm(atoms, axis=1, keepdims=True)
    chosen = np.argsort(rng.random((n, n_atoms)), axis=1)[:, :k]
    codes = np.zeros((n, n_atoms))
    np.put_along_axis(codes, chosen, rng.uniform(1, 3, size=(n, k)), axis=1)
    X = codes @ atoms + noise * rng.normal(size=(n, d)) + 0.5 * rng.normal(size=d)
    return X.astype(np.float32), atoms


SETTINGS = {
    "relu": dict(l1_coefficient=0.3, n_epochs=8),
    "topk": dict(k=3, n_epochs=3),
    "jumprelu": dict(l1_coefficient=1.0, threshold=0.5, bandwidth=0.1, n_epochs=3),
}


@pytest.fixture(scope="module")
def data():
    return planted()


@pytest.mark.parametrize("kind", sorted(SETTINGS))
def test_each_kind_recovers_the_planted_dictionary(data, kind):
    X, atoms = data
    sae = SparseAutoencoder(n_features=128, kind=kind, batch_size=64, learning_rate=1e-2,
                            dead_after=5000, progress=False, **SETTINGS[kind]).fit(X)
    best_cosine = np.abs(atoms @ sae.W_dec_.T).max(1)
    assert (best_cosine > 0.9).mean() >= 0.9
    np.testing.assert_allclose(np.linalg.norm(sae.W_dec_, axis=1), 1.0, atol=1e-5)
    metrics = sae_metrics(sae, X)
    assert metrics["explained_variance"] > 0.8
    if kind == "topk":
        assert (sae.transform(X) > 0).sum(1).max() <= 3 and metrics["l0"] == pytest.approx(3.0, abs=0.05)


def test_transform_and_inverse_match_the_formula_on_raw_inputs(data):
    X, _ = data
    sae = SparseAutoencoder(n_features=16, kind="relu", batch_size=256, n_steps=20, progress=False).fit(X)
    Z = np.maximum((X - sae.b_dec_) @ sae.W_enc_ + sae.b_enc_, 0)
    np.testing.assert_allclose(sae.transform(X), Z, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(sae.inverse_transform(Z), Z @ sae.W_dec_ + sae.b_dec_, rtol=1e-4, atol=1e-4)


def test_resampling_revives_planted_dead_features(data):
    X, _ = data
    kwargs = dict(n_features=64, kind="relu", l1_coefficient=0.3, batch_size=64, n_steps=200, learning_rate=1e-2,
                  dead_after=1000, progress=False)
    # a negative offset far along one direction keeps the initial tied features off: many start dead
    shifted = X - 20 * X.mean(0)
    without = SparseAutoencoder(resample_dead=False, **kwargs).fit(shifted)
    revived = SparseAutoencoder(resample_dead=True, **kwargs).fit(shifted)
    assert sum(revived.history_["n_resampled"]) > 0
    assert revived.dead_fraction_ < without.dead_fraction_


def test_spliced_loss_is_clean_for_an_exact_reconstruction(tiny_llama):
    from steerkit.sae.metrics import spliced_loss

    d = tiny_llama.hidden_size
    sae = SparseAutoencoder(n_features=2 * d, kind="relu")
    sae.W_enc_ = np.concatenate([np.eye(d), -np.eye(d)], 1).astype(np.float32)  # z = (relu(x), relu(-x))
    sae.W_dec_ = np.concatenate([np.eye(d), -np.eye(d)], 0).astype(np.float32)
    sae.b_enc_, sae.b_dec_ = np.zeros(2 * d, np.float32), np.zeros(d, np.float32)
    sae.n_features_in_, sae.n_features_ = d, 2 * d
    losses = spliced_loss(tiny_llama, sae, 2, ["The sea is calm today.", "Ships sail far."])
    assert losses["spliced_nats"] == pytest.approx(losses["clean_nats"], abs=1e-4)
    assert abs(losses["zero_ablated_nats"] - losses["clean_nats"]) > 1e-3
