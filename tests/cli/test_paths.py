"""Commands never write outside their output folder, and credential problems are one `error:` line."""

import json
import os

import numpy as np
import pytest

from steerkit.activations import ActivationSet
from steerkit.cli import main
from steerkit.concepts import load_concept
from steerkit.workflow import RunSettings, run_concept
from tests.metrics.test_openai_client import FakeServer


def _files(folder):
    return sorted(p.relative_to(folder) for p in folder.rglob("*"))


def _error_line(capsys):
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def test_new_concept_refuses_a_name_that_is_not_a_file_name(tmp_path, monkeypatch, capsys):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    for name in ("../x", "/tmp/x", "a/b", ".."):
        for options in ([], ["--out", "c.json"], ["--generate"]):
            assert main(["new-concept", name, *options]) == 2
            assert f"argument NAME {name!r} cannot be used as a file or folder name" in _error_line(capsys)
    assert _files(tmp_path) == [work.relative_to(tmp_path)]


def test_extract_refuses_a_concept_file_whose_name_escapes_out(tmp_path, capsys):
    concept = load_concept("pirate").to_dict() | {"name": "../../escape"}
    path = tmp_path / "sneaky.json"
    path.write_text(json.dumps(concept))
    assert main(["extract", str(path), "--out", str(tmp_path / "a" / "out")]) == 2
    assert "sneaky.json: field 'name' '../../escape' cannot be used" in _error_line(capsys)
    assert _files(tmp_path) == [path.relative_to(tmp_path)]


def test_extract_refuses_a_concept_folder_that_links_out_of_out(tmp_path, capsys):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    os.symlink(elsewhere, out / "pirate")
    assert main(["extract", "pirate", "--out", str(out), "--model", "no-such-model"]) == 2
    assert "outside the output folder" in _error_line(capsys)
    assert _files(elsewhere) == []


def _activations(concept):
    rng = np.random.default_rng(0)
    q, p = np.repeat(np.arange(3), 4), np.tile(np.repeat(np.arange(2), 2), 3)
    y = np.tile([1, 0], 6)
    arrays = {"response_avg": rng.normal(size=(12, 4, 5)), "prompt_last": rng.normal(size=(12, 4, 5))}
    return ActivationSet(arrays, y, q, p, q * 2 + p, model_name="m", concept=concept)


def test_diagnose_refuses_a_concept_name_from_activation_metadata(tmp_path, capsys):
    deep = tmp_path / "a" / "b"
    path = _activations("../..").save(deep / "acts.safetensors")
    before = _files(tmp_path)
    assert main(["diagnose", str(path), "--out", str(deep / "out")]) == 2
    assert "acts.safetensors: field 'concept' '../..' cannot be used as a file or folder name" in _error_line(capsys)
    assert _files(tmp_path) == before


def test_workflow_refuses_a_concept_folder_that_links_out_of_out(tmp_path):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    os.symlink(elsewhere, out / "formal")
    with pytest.raises(ValueError, match="outside the output folder"):
        run_concept(object(), load_concept("formal"), out, RunSettings())  # refused before the model is used
    assert _files(elsewhere) == []


def test_new_concept_generate_without_a_key_is_one_error_line(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    out = tmp_path / "grumpy.json"
    assert main(["new-concept", "grumpy", "--generate", "--base-url", "http://127.0.0.1:9/v1", "--out", str(out)]) == 2
    assert "OPENAI_API_KEY" in _error_line(capsys)
    assert not out.exists()


def test_new_concept_generate_with_a_refused_key_is_one_error_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-value-123")
    out = tmp_path / "grumpy.json"
    with FakeServer() as server:
        server.script = [(401, {"error": "invalid key sk-secret-value-123"})]
        assert main(["new-concept", "grumpy", "--generate", "--base-url", server.url, "--out", str(out)]) == 2
    err = _error_line(capsys)
    assert "refused the API key (HTTP 401)" in err and "sk-secret" not in err
    assert len(server.requests) == 1 and not out.exists()
