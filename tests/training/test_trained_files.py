"""Trained-steerer files: safetensors + JSON round trip, model checks, nothing half-written."""

import json
import os

import pytest
import torch
from safetensors.torch import load_file

from steerkit.lm import Site
from steerkit.training import LowRankSteerer, TrainedSteerer
from steerkit.training import _base
from tests.conftest import build_tiny

QUESTIONS = ["What is the capital of France?", "Name a colour.", "Count to three, please!", "Who wrote Hamlet?"]
COMPLETIONS = ["one", "two", "three", "four"]


@pytest.fixture(scope="module")
def trained(tiny_llama):
    return LowRankSteerer(tiny_llama, sites=[1, Site(2, "mlp")], rank=3, activation="tanh", learning_rate=1e-2,
                          batch_size=2, gradient_accumulation=1, epochs=2, progress=False).fit(QUESTIONS, COMPLETIONS)


def test_save_then_load_gives_the_same_steerer(trained, tiny_llama, tmp_path):
    tensor_path = trained.save(tmp_path / "adapter")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter.json", "adapter.safetensors"]
    stored = load_file(tensor_path)
    for index, intervention in enumerate(trained.interventions()):
        assert torch.equal(stored[f"{index}.W_up"], intervention.W_up) and torch.equal(stored[f"{index}.W_down"], intervention.W_down)
    sidecar = json.loads((tmp_path / "adapter.json").read_text())
    assert sidecar["method"] == "low_rank" and sidecar["model"] == "tiny-llama" and sidecar["hidden_size"] == 64
    assert sidecar["n_blocks"] == 3 and sidecar["vocab_size"] == len(tiny_llama.tokenizer)
    assert sidecar["sites"] == ["1", "2.mlp"] and sidecar["positions"] == "all"
    assert (sidecar["rank"], sidecar["activation"], sidecar["variant"]) == (3, "tanh", "adapter")
    assert sidecar["settings"]["learning_rate"] == 1e-2 and sidecar["settings"]["epochs"] == 2
    assert sidecar["history"]["loss"] == trained.history_.loss

    for loaded in (LowRankSteerer.load(tmp_path / "adapter.safetensors", tiny_llama),
                   TrainedSteerer.load(tmp_path / "adapter", tiny_llama, progress=False)):
        assert type(loaded) is LowRankSteerer and loaded.model is tiny_llama
        assert {k: v for k, v in loaded.get_params().items() if k != "progress"} == \
            {k: v for k, v in trained.get_params().items() if k != "progress"}
        assert loaded.history_ == trained.history_
        assert loaded.n_trainable_parameters_ == trained.n_trainable_parameters_ == 2 * 2 * 3 * 64
        for a, b in zip(loaded.interventions(), trained.interventions()):
            assert a.site == b.site and all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
    assert loaded.generate(QUESTIONS, max_new_tokens=6) == trained.generate(QUESTIONS, max_new_tokens=6)


def test_a_vector_variant_round_trips(tiny_llama, tmp_path):
    steerer = LowRankSteerer(tiny_llama, variant="vector", positions="last", sites=[2], learning_rate=1e-2, batch_size=4,
                             epochs=1, progress=False).fit(QUESTIONS, COMPLETIONS)
    steerer.save(tmp_path / "vector")
    sidecar = json.loads((tmp_path / "vector.json").read_text())
    assert (sidecar["variant"], sidecar["rank"], sidecar["positions"]) == ("vector", None, "last")
    loaded = LowRankSteerer.load(tmp_path / "vector", tiny_llama)
    assert torch.equal(loaded.interventions()[0].vector, steerer.interventions()[0].vector)
    assert loaded.interventions()[0].positions == "last"


def test_load_refuses_another_model_naming_what_differs(trained, tiny_llama, tokenizer, tmp_path):
    trained.save(tmp_path / "adapter")
    other_arch = build_tiny("qwen2", tokenizer)
    with pytest.raises(ValueError, match=r"model 'tiny-llama' \(this model: 'tiny-qwen2'\); load it onto") as error:
        LowRankSteerer.load(tmp_path / "adapter", other_arch)
    assert "hidden_size" not in str(error.value)
    narrow = build_tiny("llama", tokenizer)
    narrow.name = "tiny-llama"
    narrow.model.config.hidden_size = 32  # what a narrower model of the same name reports
    with pytest.raises(ValueError, match=r"was trained on another model: hidden_size 64 \(this model: 32\);"):
        LowRankSteerer.load(tmp_path / "adapter", narrow)


def test_load_reports_missing_damaged_and_foreign_files(trained, tiny_llama, tmp_path):
    with pytest.raises(FileNotFoundError, match="no trained steerer file at .*missing.safetensors"):
        LowRankSteerer.load(tmp_path / "missing", tiny_llama)
    trained.save(tmp_path / "adapter")
    (tmp_path / "adapter.json").write_text("{not json")
    with pytest.raises(ValueError, match="adapter.json is not a trained-steerer sidecar .*re-create it") as error:
        LowRankSteerer.load(tmp_path / "adapter", tiny_llama)
    assert "\n" not in str(error.value)
    trained.save(tmp_path / "adapter")
    sidecar = json.loads((tmp_path / "adapter.json").read_text())
    (tmp_path / "adapter.json").write_text(json.dumps({**sidecar, "method": "mystery"}))
    with pytest.raises(ValueError, match="holds a 'mystery' steerer, not a low_rank one"):
        LowRankSteerer.load(tmp_path / "adapter", tiny_llama)
    (tmp_path / "adapter.json").write_text(json.dumps({**sidecar, "params": {**sidecar["params"], "rank": 4}}))
    with pytest.raises(ValueError, match="does not hold the tensors its sidecar describes"):
        LowRankSteerer.load(tmp_path / "adapter", tiny_llama)


def test_nothing_is_written_when_saving_fails(trained, tiny_llama, tmp_path, monkeypatch):
    with pytest.raises(Exception, match="not fitted"):
        LowRankSteerer(tiny_llama).save(tmp_path / "unfitted")

    def broken_json(path, obj):
        raise OSError("disk full")

    monkeypatch.setattr(_base, "write_json", broken_json)
    with pytest.raises(OSError, match="disk full"):
        trained.save(tmp_path / "adapter")
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_overwrite_never_pairs_a_new_sidecar_with_old_tensors(trained, tiny_llama, tmp_path,
                                                                             monkeypatch):
    trained.save(tmp_path / "adapter")
    old = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    other = LowRankSteerer(tiny_llama, sites=[2], rank=1, batch_size=4, epochs=1, progress=False).fit(QUESTIONS,
                                                                                                        COMPLETIONS)
    replace = os.replace

    def interrupted(source, target):  # the process dies as the tensors are put in place
        if str(target).endswith(".safetensors"):
            raise KeyboardInterrupt
        replace(source, target)

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        other.save(tmp_path / "adapter")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == old
