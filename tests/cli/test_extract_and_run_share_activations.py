"""`steerkit extract` and `steerkit run` write one activation file: the judge-filtered one."""

import pytest

import steerkit.lm
import steerkit.workflow
from steerkit.activations import ActivationSet
from steerkit.cli import main
from steerkit.concepts import load_concept
from steerkit.workflow import RunSettings, run_concept

SETTINGS = RunSettings(n_questions=3, max_new_tokens=4, n_search_questions=2, n_held_out=2, batch_size=8)
EXTRACT = ["--n-questions", "3", "--max-new-tokens", "4", "--batch-size", "8"]


class Stop(Exception):
    """Raised where a run has its activations, to stop it there."""


def _run_until_activations(monkeypatch, model, out):
    """``run_concept`` stopped right after it has its activations (at the diagnostics)."""
    def stop(*args, **kwargs):
        raise Stop

    with monkeypatch.context() as patch:
        patch.setattr(steerkit.workflow.GraceRecommender, "fit", stop)
        with pytest.raises(Stop), pytest.warns(UserWarning, match="judge filter kept only"):
            run_concept(model, load_concept("pirate"), out, SETTINGS, progress=False)


def _never_extract(monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("activations extracted again")

    monkeypatch.setattr(steerkit.workflow, "build_activation_set", never)
    monkeypatch.setattr(steerkit.activations, "build_activation_set", never)


def test_run_after_extract_reuses_the_judge_filtered_activations(tmp_path, monkeypatch, tiny_llama, capsys):
    monkeypatch.setattr(steerkit.lm, "load_model", lambda *a, **k: tiny_llama)
    assert main(["extract", "pirate", "--out", str(tmp_path), *EXTRACT]) == 0
    assert "warning: the judge filter kept only" in capsys.readouterr().err  # the filter ran
    extracted = ActivationSet.load(tmp_path / "pirate" / "activations.safetensors")
    _never_extract(monkeypatch)
    _run_until_activations(monkeypatch, tiny_llama, tmp_path)
    again = ActivationSet.load(tmp_path / "pirate" / "activations.safetensors")
    assert again.info["digest"] == extracted.info["digest"]


def test_extract_after_run_writes_what_run_uses(tmp_path, monkeypatch, tiny_llama):
    _run_until_activations(monkeypatch, tiny_llama, tmp_path)
    path = tmp_path / "pirate" / "activations.safetensors"
    written = path.read_bytes()
    monkeypatch.setattr(steerkit.lm, "load_model", lambda *a, **k: tiny_llama)
    _never_extract(monkeypatch)
    assert main(["extract", "pirate", "--out", str(tmp_path), *EXTRACT]) == 0
    assert path.read_bytes() == written


def test_extract_refuses_a_single_question_naming_the_option(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(steerkit.lm, "load_model", lambda *a, **k: pytest.fail("model loaded"))
    assert main(["extract", "pirate", "--out", str(tmp_path), "--n-questions", "1"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: --n-questions 1") and "at least 2" in error and error.count("\n") == 1
