"""The main job end to end on a tiny random model: files, report, resume."""

import json
import re
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest

from steerkit.concepts import Concept, load_concept
from steerkit.estimators.files import load_gguf_control_vector, load_vector
from steerkit.metrics import SteerScorer
from steerkit.report import write_report
from steerkit.run_summary import RunSummary
from steerkit.workflow import RunSettings, run_concept

TINY = RunSettings(n_questions=3, max_new_tokens=6, budget=3, n_search_questions=2, n_held_out=2, batch_size=8)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_llama):
    out = tmp_path_factory.mktemp("run")
    with pytest.warns(UserWarning, match="judge filter kept only"):  # random weights: answers are noise
        summary = run_concept(tiny_llama, load_concept("pirate"), out, TINY, progress=False)
    return out / "pirate", summary


def test_run_writes_every_output(tiny_run):
    folder, summary = tiny_run
    for name in ("report.html", "summary.json", "trials.csv", "held_out_answers.csv", "activations.safetensors",
                 "generations.json", "diagnostics/alignment.png", "diagnostics/layers.csv", "vectors/best.safetensors"):
        assert (folder / name).is_file(), name
    on_disk = json.loads((folder / "summary.json").read_text())
    assert on_disk["held_out"].keys() == {"unsteered", "prompting", "steered"}
    assert on_disk["recommendation"]["construction"] in ("pv", "unit_mean", "cluster")
    assert len(open(folder / "trials.csv").read().splitlines()) == TINY.budget + 1
    vector, sidecar = load_vector(folder / "vectors" / "best")
    assert vector.shape == (64,) and sidecar["layer"] == summary.best["layer"]
    if summary.best["layer"] >= 2:
        vectors, _ = load_gguf_control_vector(folder / "vectors" / "best.gguf")
        np.testing.assert_allclose(vectors[summary.best["layer"]], summary.best["coefficient"] * vector, rtol=1e-6)
    else:
        assert "cannot be expressed" in summary.gguf


def test_report_is_self_contained(tiny_run):
    folder, _ = tiny_run
    html = (folder / "report.html").read_text()
    for section in ("Does steering work?", "GRACE recommendation", "Search", "Answers to held-out questions"):
        assert section in html
    assert html.count("data:image/png;base64,") == 6
    assert "http://" not in html and "https://" not in html  # opens offline


def _without_images(html: str) -> str:
    return re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "IMAGE", html)


def test_a_report_is_redrawn_from_the_run_folder_alone(tiny_run, tmp_path):
    folder, summary = tiny_run
    copy = shutil.copytree(folder, tmp_path / "pirate")
    for name in ("activations.safetensors", "generations.json", "judge_filter.json", "held_out.json", "study.db"):
        (copy / name).unlink()  # nothing the model made is needed, only the run's summary files
    loaded = RunSummary.load(copy)
    assert loaded.to_dict() == json.loads((folder / "summary.json").read_text())
    pd.testing.assert_frame_equal(loaded.answers, summary.answers, check_dtype=False)  # text either way
    write_report(tmp_path / "again.html", loaded)
    again = (tmp_path / "again.html").read_text()
    assert _without_images(again) == _without_images((folder / "report.html").read_text())
    assert again.count("data:image/png;base64,") == 6


def test_rerun_resumes_from_the_cache(tiny_run, tiny_llama, monkeypatch):
    folder, summary = tiny_run
    import steerkit.workflow as workflow

    def boom(*args, **kwargs):
        raise AssertionError("answers should come from the cache")

    monkeypatch.setattr(workflow, "generate_contrastive", boom)
    monkeypatch.setattr(workflow, "build_activation_set", boom)
    monkeypatch.setattr(workflow, "judge_filter", boom)
    monkeypatch.setattr(SteerScorer, "evaluate", boom)  # neither the search nor the held-out comparison judges
    with pytest.warns(UserWarning):
        again = run_concept(tiny_llama, load_concept("pirate"), folder.parent, TINY, progress=False)
    assert again.best == summary.best
    import optuna

    study = optuna.load_study(study_name=None, storage=f"sqlite:///{folder / 'study.db'}")  # its only study
    assert len(study.trials) == TINY.budget  # the finished study was reused, not extended


def test_rerun_with_corrupt_caches_warns_and_recomputes_them(tiny_run, tiny_llama, tmp_path):
    folder, summary = tiny_run
    copy = shutil.copytree(folder, tmp_path / "pirate")
    damaged = {"generations.json": "{truncated", "judge_filter.json": "[1, 2]",
               "activations.safetensors": "not safetensors", "held_out.json": '{"digest": 1'}
    for name, text in damaged.items():
        (copy / name).write_text(text)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = run_concept(tiny_llama, load_concept("pirate"), tmp_path, TINY, progress=False)
    messages = [str(w.message) for w in caught]
    for name in damaged:
        assert any(f"{copy / name} is corrupt" in m and "recomputed" in m for m in messages), name
    assert again.best == summary.best
    pd.testing.assert_frame_equal(again.held_out, summary.held_out)
    assert json.loads((copy / "generations.json").read_text())["samples"]  # repaired


def test_an_evaluation_question_too_long_for_the_context_stops_the_run_before_any_generation(tiny_llama, tmp_path,
                                                                                             monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("generated although an evaluation prompt does not fit")

    data = load_concept("pirate").to_dict()
    data["evaluation_questions"][TINY.n_search_questions] = "Tell me about the wide blue sea. " * 20  # a held-out one
    monkeypatch.setattr(tiny_llama.model.config, "max_position_embeddings", 100)  # extraction prompts fit
    monkeypatch.setattr(tiny_llama.model, "generate", never)
    with pytest.raises(ValueError, match=r"question 'Tell me about the wide blue sea.*' is \d+ tokens \+ max_new_tokens=6"):
        run_concept(tiny_llama, Concept.from_dict(data), tmp_path, TINY, progress=False)


def test_rerun_reads_held_out_scores_that_were_all_missing(tiny_run, tiny_llama, tmp_path, monkeypatch):
    """Empty answers score NaN, saved as null; a column of nulls must come back as NaN, not None."""
    folder, _ = tiny_run
    copy = shutil.copytree(folder, tmp_path / "pirate")
    cache = json.loads((copy / "held_out.json").read_text())
    for row in cache["tables"]["steered"]:
        row.update(concept=None, utility=None)
    (copy / "held_out.json").write_text(json.dumps(cache))
    import steerkit.metrics._scorer as scorer

    monkeypatch.setattr(scorer.SteerScorer, "evaluate", lambda *a, **k: pytest.fail("held-out answers re-judged"))
    with pytest.warns(UserWarning, match="judge filter kept only"):
        again = run_concept(tiny_llama, load_concept("pirate"), tmp_path, TINY, progress=False)
    assert np.isnan(again.held_out.loc["steered", "concept"]) and np.isnan(again.held_out.loc["steered", "utility"])
    assert json.loads((copy / "summary.json").read_text())["held_out"]["steered"]["concept"] is None
