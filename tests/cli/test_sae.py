"""`steerkit sae train` and `steerkit sae features` end to end on the tiny random llama."""

import json

import numpy as np
import pytest

from steerkit import cli
from steerkit.activations import ActivationSet
from steerkit.cli import main
from steerkit.sae.analysis import concept_diffusion, top_features_by_activation
from steerkit.sae.files import load_sae, save_sae
from tests.sae.hand_built_sae import hand_built_sae
from tests.sae.test_analysis import CONCEPT_FEATURE, LAYER, planted_concept


@pytest.fixture
def tiny_model(monkeypatch, tiny_llama):
    monkeypatch.setattr(cli._inputs, "_load_model", lambda args, name: tiny_llama)
    return tiny_llama


def test_train_streams_fits_and_saves_a_loadable_sae_with_metrics(tiny_model, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(f"Text number {i} about ships, clouds and the sea." for i in range(20)))
    out = tmp_path / "run"
    assert main(["sae", "train", "--layer", "2", "--corpus", str(corpus), "--expansion", "2", "--steps", "5",
                 "--sae-batch-size", "32", "--out", str(out), "--quiet"]) == 0
    sae = load_sae(out / "sae")
    assert sae.W_dec_.shape == (128, 64) and str(sae.site_) == "2"
    np.testing.assert_allclose(np.linalg.norm(sae.W_dec_, axis=1), 1.0, rtol=1e-5)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["tokens"] > 100 and 0 <= metrics["dead_fraction"] <= 1
    assert {"mse", "explained_variance", "l0", "clean_nats", "spliced_nats", "tokens_per_second"} <= set(metrics)


def test_features_writes_diffusion_top_features_and_overlap(tiny_model, tmp_path):
    sae = hand_built_sae(d=tiny_model.hidden_size, layer=LAYER)
    save_sae(tmp_path / "sae", sae)
    concept = planted_concept(sae, n_layers=tiny_model.n_blocks + 1)
    concept.save(tmp_path / "activations.safetensors")
    out = tmp_path / "features.json"
    assert main(["sae", "features", str(tmp_path / "activations.safetensors"), "--sae", str(tmp_path / "sae"),
                 "--k", "4", "--out", str(out), "--quiet"]) == 0
    result = json.loads(out.read_text())
    loaded = ActivationSet.load(tmp_path / "activations.safetensors")
    assert result["top_by_activation"][0]["feature"] == CONCEPT_FEATURE
    assert [row["feature"] for row in result["top_by_activation"]] == top_features_by_activation(sae, loaded, 4).tolist()
    assert result["diffusion"] == pytest.approx(concept_diffusion(sae, loaded))
    influence = [row["feature"] for row in result["top_by_influence"]]
    assert len(influence) == 4 and all(len(row["tokens"]) == 5 for row in result["top_by_influence"])
    assert result["overlap"] == len(set(influence) & {row["feature"] for row in result["top_by_activation"]})


def test_features_with_an_sae_folder_that_does_not_exist_is_one_error_line(tiny_model, tmp_path, capsys):
    sae = hand_built_sae(d=tiny_model.hidden_size, layer=LAYER)
    planted_concept(sae, n_layers=tiny_model.n_blocks + 1).save(tmp_path / "activations.safetensors")
    assert main(["sae", "features", str(tmp_path / "activations.safetensors"), "--sae", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "none" in err
