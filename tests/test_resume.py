"""Resume: interrupted generation keeps its finished batches; corrupt caches are recomputed."""

import json

import pandas as pd
import pytest

from steerkit.activations import generate_contrastive
from steerkit.concepts import load_concept
from steerkit.workflow import RunSettings, contrastive_answers

SMALL = dict(n_questions=2, max_new_tokens=3, batch_size=8, progress=False)  # 20 prompts: batches of 8, 8, 4


@pytest.fixture
def counted_generate(tiny_llama, monkeypatch):
    """Count ``tiny_llama``'s model.generate calls; raise KeyboardInterrupt at call ``interrupt_at``."""
    calls = {"n": 0, "interrupt_at": None}
    original = tiny_llama.model.generate

    def generate(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == calls["interrupt_at"]:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(tiny_llama.model, "generate", generate)
    return calls


def test_interrupted_contrastive_generation_resumes_from_its_finished_batches(tiny_llama, counted_generate, tmp_path):
    pirate = load_concept("pirate")
    uninterrupted = generate_contrastive(tiny_llama, pirate, **SMALL)
    assert counted_generate["n"] == 3

    counted_generate.update(n=0, interrupt_at=2)  # Ctrl-C during the second batch
    with pytest.raises(KeyboardInterrupt):
        generate_contrastive(tiny_llama, pirate, checkpoint=tmp_path / "partial.json", **SMALL)
    assert len(json.loads((tmp_path / "partial.json").read_text())["answers"]) == 8

    counted_generate.update(n=0, interrupt_at=None)
    resumed = generate_contrastive(tiny_llama, pirate, checkpoint=tmp_path / "partial.json", **SMALL)
    assert counted_generate["n"] == 2  # only the two unfinished batches
    pd.testing.assert_frame_equal(resumed, uninterrupted)


def test_checkpoint_of_other_settings_is_not_reused(tiny_llama, counted_generate, tmp_path):
    pirate = load_concept("pirate")
    generate_contrastive(tiny_llama, pirate, checkpoint=tmp_path / "partial.json", **SMALL)
    counted_generate.update(n=0)
    generate_contrastive(tiny_llama, pirate, checkpoint=tmp_path / "partial.json", **{**SMALL, "max_new_tokens": 2})
    assert counted_generate["n"] == 3


def _corruptions(valid: str) -> dict[str, str]:
    """Damaged versions of a valid JSON cache text."""
    content = json.loads(valid)
    return {
        "truncated": valid[: len(valid) // 2],
        "not json": "\x00\x01 not json",
        "wrong shape": json.dumps({**content, "samples": [1, 2, 3]}),
        "wrong type": json.dumps([content]),
    }


@pytest.mark.parametrize("damage", ["truncated", "not json", "wrong shape", "wrong type"])
def test_corrupt_generations_cache_is_recomputed_with_a_warning(tiny_llama, tmp_path, damage):
    pirate, settings = load_concept("pirate"), RunSettings(n_questions=1, max_new_tokens=2, batch_size=10)
    samples, _ = contrastive_answers(tiny_llama, pirate, tmp_path, settings, progress=False)
    cache = tmp_path / "generations.json"
    cache.write_text(_corruptions(cache.read_text())[damage])
    with pytest.warns(UserWarning, match=f"{cache}.*corrupt.*recomputed"):
        again, reused = contrastive_answers(tiny_llama, pirate, tmp_path, settings, progress=False)
    assert not reused
    pd.testing.assert_frame_equal(again, samples)
    assert json.loads(cache.read_text())["samples"] == samples.to_dict(orient="records")  # repaired


def test_corrupt_checkpoint_is_ignored_with_a_warning(tiny_llama, counted_generate, tmp_path):
    (tmp_path / "partial.json").write_text('{"digest": "x", "answers": [')
    with pytest.warns(UserWarning, match="partial.json is corrupt"):
        generate_contrastive(tiny_llama, load_concept("pirate"), checkpoint=tmp_path / "partial.json", **SMALL)
    assert counted_generate["n"] == 3


def test_extract_command_survives_a_corrupt_generations_cache(tmp_path, capsys):
    from steerkit.cli import main

    command = ["extract", "pirate", "--out", str(tmp_path), "--n-questions", "2", "--max-new-tokens", "2"]
    assert main(command) == 0
    cache = tmp_path / "pirate" / "generations.json"
    cache.write_bytes(cache.read_bytes()[:100])
    capsys.readouterr()
    assert main(command) == 0
    err = capsys.readouterr().err
    assert f"warning: cache {cache} is corrupt" in err and "generated 20 answers" in err


def test_contrastive_answers_continue_an_interrupted_generation_and_drop_the_checkpoint(tiny_llama, counted_generate,
                                                                                        tmp_path):
    pirate = load_concept("pirate")
    settings = RunSettings(n_questions=2, max_new_tokens=3, batch_size=8)
    counted_generate.update(interrupt_at=3)
    with pytest.raises(KeyboardInterrupt):
        contrastive_answers(tiny_llama, pirate, tmp_path, settings, progress=False)
    assert not (tmp_path / "generations.json").exists()
    counted_generate.update(n=0, interrupt_at=None)
    samples, reused = contrastive_answers(tiny_llama, pirate, tmp_path, settings, progress=False)
    assert counted_generate["n"] == 1 and not reused
    assert not (tmp_path / "generations.partial.json").exists()
    pd.testing.assert_frame_equal(samples, generate_contrastive(tiny_llama, pirate, role="user", **SMALL))
