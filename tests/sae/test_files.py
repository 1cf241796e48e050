"""SAELens-format files: exact round trip, a hand-written SAELens folder, one-line errors."""

import json

import numpy as np
import pytest
from safetensors.numpy import save_file

from steerkit.lm.sites import Site
from steerkit.sae import SparseAutoencoder
from steerkit.sae.files import hook_name, load_sae, save_sae, site_of_hook


@pytest.mark.parametrize("kind", ["relu", "topk", "jumprelu"])
def test_round_trip_is_exact(tmp_path, kind):
    X = np.random.default_rng(0).normal(size=(300, 8)).astype(np.float32)
    sae = SparseAutoencoder(n_features=16, kind=kind, k=4, batch_size=100, n_steps=5, progress=False).fit(X)
    sae.site_, sae.model_name_ = Site(3, "mlp"), "tiny"
    loaded = load_sae(save_sae(tmp_path / "sae", sae))
    for name in ("W_enc_", "b_enc_", "W_dec_", "b_dec_") + (("threshold_",) if kind == "jumprelu" else ()):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(sae, name))
    assert (loaded.kind, loaded.site_, loaded.model_name_) == (kind, Site(3, "mlp"), "tiny")
    np.testing.assert_array_equal(loaded.transform(X), sae.transform(X))
    cfg = json.loads((tmp_path / "sae" / "cfg.json").read_text())
    assert cfg["metadata"]["hook_name"] == "blocks.2.hook_mlp_out" and cfg["normalize_activations"] == "none"


def test_hook_names_round_trip():
    for site in (Site(0), Site(1), Site(5), Site(2, "attn"), Site(4, "mlp")):
        assert site_of_hook(hook_name(site)) == site
    assert site_of_hook("blocks.0.attn.hook_z") is None


def test_loads_a_folder_written_by_saelens_5(tmp_path):
    rng = np.random.default_rng(1)
    weights = {"W_enc": rng.normal(size=(6, 10)), "b_enc": rng.normal(size=10), "W_dec": rng.normal(size=(10, 6)),
               "b_dec": rng.normal(size=6)}
    save_file({k: v.astype(np.float32) for k, v in weights.items()}, str(tmp_path / "sae_weights.safetensors"))
    (tmp_path / "cfg.json").write_text(json.dumps({
        "architecture": "topk", "d_in": 6, "d_sae": 10, "activation_fn_kwargs": {"k": 2}, "dtype": "float32",
        "device": "cpu", "model_name": "gpt2", "hook_name": "blocks.4.hook_resid_post", "hook_layer": 4,
        "apply_b_dec_to_input": True, "normalize_activations": "none"}))
    sae = load_sae(tmp_path)
    assert (sae.kind, sae.k, sae.site_, sae.model_name_) == ("topk", 2, Site(5), "gpt2")
    x = rng.normal(size=(4, 6)).astype(np.float32)
    pre = (x - weights["b_dec"]) @ weights["W_enc"] + weights["b_enc"]
    expected = np.where(pre >= np.sort(pre, axis=1)[:, -2:-1], np.maximum(pre, 0), 0)
    np.testing.assert_allclose(sae.transform(x), expected, rtol=1e-5, atol=1e-5)


def test_errors_name_the_file_and_field(tmp_path):
    with pytest.raises(FileNotFoundError, match="cfg.json"):
        load_sae(tmp_path)
    X = np.random.default_rng(0).normal(size=(100, 4)).astype(np.float32)
    save_sae(tmp_path / "s", SparseAutoencoder(n_features=8, n_steps=2, progress=False).fit(X))
    cfg = json.loads((tmp_path / "s" / "cfg.json").read_text())
    (tmp_path / "s" / "cfg.json").write_text(json.dumps({**cfg, "d_sae": 9}))
    with pytest.raises(ValueError, match="W_enc") as err:
        load_sae(tmp_path / "s")
    assert "\n" not in str(err.value)
    (tmp_path / "s" / "cfg.json").write_text(json.dumps({**cfg, "architecture": "gated"}))
    with pytest.raises(ValueError, match="architecture"):
        load_sae(tmp_path / "s")
