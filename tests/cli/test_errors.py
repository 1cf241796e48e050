"""What the command line prints when the user gets something wrong: one ``error:`` line, exit 2."""

import warnings
from dataclasses import replace

import pandas as pd
import pytest
import torch

import steerkit.cli._inputs
import steerkit.cli.concepts
import steerkit.lm
from steerkit.cli import main
from steerkit.concepts import load_concept
from steerkit.metrics.openai_client import JudgeAuthError
from steerkit.run_settings import RunSettings
from steerkit.run_summary import RunSummary


@pytest.fixture
def no_model(monkeypatch):
    """Fail the test if a command gets as far as loading a model."""

    def load_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the options were checked")

    monkeypatch.setattr(steerkit.lm, "load_model", load_model)


def _error_line(capsys) -> str:
    """The whole of stderr, checked to be exactly one ``error:`` line."""
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def _raising(monkeypatch, error: BaseException, command: str = "_cmd_concepts", module=steerkit.cli.concepts) -> None:
    def fail(*args):
        raise error

    monkeypatch.setattr(module, command, fail)


@pytest.mark.parametrize("argv, option", [
    (["run", "--budget", "0"], "--budget"),
    (["run", "--budget", "-3"], "--budget"),
    (["run", "--max-new-tokens", "0"], "--max-new-tokens"),
    (["run", "--n-held-out", "0"], "--n-held-out"),
    (["run", "--n-search-questions", "0"], "--n-search-questions"),
    (["run", "--n-questions", "-1"], "--n-questions"),
    (["run", "--seed", "-1"], "--seed"),
    (["extract", "formal", "--batch-size", "0"], "--batch-size"),
    (["extract", "formal", "--n-questions", "-2"], "--n-questions"),
    (["search", "a.safetensors", "--n-trials", "0"], "--n-trials"),
    (["search", "a.safetensors", "--coefficients", "1", "nan"], "--coefficients"),
    (["search", "a.safetensors", "--layers", "-1"], "--layers"),
    (["fit", "a.safetensors", "--layer", "-1"], "--layer"),
    (["fit", "a.safetensors", "--coefficient", "inf"], "--coefficient"),
    (["generate", "v.safetensors", "--coefficient", "nan"], "--coefficient"),
    (["generate", "v.safetensors", "--n-questions", "0"], "--n-questions"),
    (["diagnose", "a.safetensors", "--top-k", "0"], "--top-k"),
    (["new-concept", "x", "--n-questions", "0"], "--n-questions"),
])
def test_out_of_range_options_are_refused_when_parsed(argv, option, capsys, no_model):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    last = capsys.readouterr().err.splitlines()[-1]
    assert "error: argument " + option in last


@pytest.mark.parametrize("command", ["run", "extract"])
@pytest.mark.parametrize("device", ["nonsense", "cuda", "cuda:1"])
def test_unusable_device_is_one_line_before_the_model_loads(command, device, tmp_path, capsys, monkeypatch,
                                                            no_model):
    if device == "cuda:1":  # a machine with one GPU
        monkeypatch.setattr(torch.accelerator, "current_accelerator", lambda *a, **k: torch.device("cuda"))
        monkeypatch.setattr(torch.accelerator, "device_count", lambda: 1)
    else:
        monkeypatch.setattr(torch.accelerator, "current_accelerator", lambda *a, **k: None)
    assert main([command, "formal", "--out", str(tmp_path), "--device", device]) == 2
    line = _error_line(capsys)
    assert f"--device {device!r}" in line and "cpu" in line
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("argv, option, counts", [
    (["run", "formal", "--n-questions", "30"], "--n-questions", "'formal' has 24 extraction questions"),
    (["extract", "formal", "--n-questions", "25"], "--n-questions", "'formal' has 24 extraction questions"),
    (["run", "formal", "--n-search-questions", "20"], "--n-held-out", "'formal' has 24 evaluation questions"),
    (["run", "formal", "--n-search-questions", "24", "--n-held-out", "1"], "--n-search-questions",
     "'formal' has 24 evaluation questions"),
    (["run", "pirate", "formal", "--n-held-out", "17"], "--n-held-out", "'pirate' has 24 evaluation questions"),
])
def test_more_questions_than_the_concept_has_is_refused_before_the_model_loads(argv, option, counts, tmp_path,
                                                                               capsys, no_model):
    assert main([*argv, "--out", str(tmp_path)]) == 2
    line = _error_line(capsys)
    assert option in line and counts in line
    assert not any(tmp_path.iterdir())


def test_extract_does_not_check_the_evaluation_split(tmp_path, capsys, monkeypatch):
    """``extract`` judges nothing, so a concept with few evaluation questions is fine for it."""
    concept = load_concept("formal")
    path = tmp_path / "few.json"
    replace(concept, evaluation_questions=concept.evaluation_questions[:2]).save(path)
    _raising(monkeypatch, ValueError("stop"), "_load_model", steerkit.cli._inputs)
    assert main(["extract", str(path), "--out", str(tmp_path / "out"), "--n-questions", "24"]) == 2
    assert _error_line(capsys) == "error: stop"
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "--n-search-questions" in _error_line(capsys)


def _fake_run(monkeypatch, model, n_held_out):
    """Replace the model by ``model`` and the workflow by a stand-in returning a summary on
    ``n_held_out`` questions."""
    import steerkit.workflow

    held = pd.DataFrame({"utility": 50.0, "concept": 40.0, "coherence": 60.0},
                        index=["unsteered", "prompting", "steered"])
    summary = RunSummary(concept="formal", description="", model="tiny", dtype="float32", settings=RunSettings(),
                         filter={}, recommendation={"construction": "pv"}, statistics={},
                         best={"construction": "pv", "layer": 3, "coefficient": 2.0}, held_out=held,
                         answers=pd.DataFrame(), trials=pd.DataFrame(), figures={}, n_search_questions=8,
                         n_held_out=n_held_out, gguf="", timings_s={})
    monkeypatch.setattr(steerkit.lm, "load_model", lambda *a, **k: model)
    monkeypatch.setattr(steerkit.workflow, "run_concept", lambda *a, **k: summary)


def test_run_prints_the_held_out_count(tmp_path, capsys, monkeypatch, tiny_llama):
    _fake_run(monkeypatch, tiny_llama, 3)
    assert main(["run", "formal", "--out", str(tmp_path), "--n-held-out", "3"]) == 0
    assert capsys.readouterr().out.count("on 3 held-out questions") == 1


def _run_until_generation(monkeypatch, model, argv, capsys) -> list[str]:
    """``steerkit run`` with ``model``, stopped (Ctrl-C) where the first answers would be
    generated; returns the warning lines printed up to there."""
    import steerkit.workflow

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(steerkit.lm, "load_model", lambda *a, **k: model)
    monkeypatch.setattr(steerkit.workflow, "contrastive_answers", interrupt)
    assert main(argv) == 130
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]


def test_run_warns_once_when_the_held_out_set_is_small(tmp_path, capsys, monkeypatch, tiny_llama):
    argv = ["run", "formal", "--out", str(tmp_path), "--n-held-out", "3"]
    warning = _run_until_generation(monkeypatch, tiny_llama, argv, capsys)
    assert len(warning) == 1 and "3 held-out questions" in warning[0] and "--n-held-out" in warning[0]


def test_run_does_not_warn_about_a_large_enough_held_out_set(tmp_path, capsys, monkeypatch, tiny_llama):
    assert _run_until_generation(monkeypatch, tiny_llama, ["run", "formal", "--out", str(tmp_path)], capsys) == []


def test_a_prompt_too_long_in_any_concept_stops_run_before_the_first_concept_starts(tmp_path, capsys, monkeypatch,
                                                                                  tiny_llama):
    import steerkit.workflow

    concept = load_concept("formal")
    questions = list(concept.evaluation_questions)
    questions[0] = "Describe the history of formal letters in great detail. " * 12
    replace(concept, name="long", evaluation_questions=tuple(questions)).save(tmp_path / "long.json")
    monkeypatch.setattr(steerkit.lm, "load_model", lambda *a, **k: tiny_llama)
    monkeypatch.setattr(tiny_llama.model.config, "max_position_embeddings", 150)
    monkeypatch.setattr(steerkit.workflow, "run_concept", lambda *a, **k: pytest.fail("a concept started"))
    assert main(["run", "pirate", str(tmp_path / "long.json"), "--out", str(tmp_path / "out")]) == 2
    loaded, error = capsys.readouterr().err.splitlines()  # the model loads, then the prompts are checked
    assert loaded.startswith("loaded ") and error.startswith("error: question 'Describe the history of formal")


def test_ctrl_c_asks_to_resume_with_exit_status_130(capsys, monkeypatch):
    _raising(monkeypatch, KeyboardInterrupt())
    assert main(["concepts"]) == 130
    assert capsys.readouterr().err == "interrupted; re-run the same command to resume\n"


@pytest.mark.parametrize("error, expected", [
    (IsADirectoryError(21, "Is a directory", "/data/pirate"), "error: /data/pirate is a folder"),
    (PermissionError(13, "Permission denied", "/data/out/summary.json"), "error: /data/out/summary.json is not"),
    (NotADirectoryError(20, "Not a directory", "/data/file/x"), "error: /data/file/x has a file where"),
    (FileExistsError(17, "File exists", "/data/out"), "error: /data/out already exists"),
    (OSError(28, "No space left on device", "/data/out/a.tmp"), "error: /data/out/a.tmp: no space left on device"),
])
def test_file_system_errors_name_the_path_and_what_to_do(error, expected, capsys, monkeypatch):
    _raising(monkeypatch, error)
    assert main(["concepts"]) == 2
    line = _error_line(capsys)
    assert line.startswith(expected) and "; " in line and "Errno" not in line


@pytest.mark.parametrize("error", [KeyError("vector"), KeyError(3)])
def test_a_bare_missing_key_is_not_printed_as_its_repr(error, capsys, monkeypatch):
    _raising(monkeypatch, error)
    assert main(["concepts"]) == 2
    line = _error_line(capsys)
    assert line != f"error: {error}" and f"{error.args[0]!r}" in line and "missing" in line


def test_a_key_error_with_a_message_prints_the_message(capsys, monkeypatch):
    _raising(monkeypatch, KeyError("position 'x' not in this ActivationSet; available: ['response_avg']"))
    assert main(["concepts"]) == 2
    assert _error_line(capsys) == "error: position 'x' not in this ActivationSet; available: ['response_avg']"


def test_multi_line_messages_become_one_line(capsys, monkeypatch):
    _raising(monkeypatch, ValueError("concept.json: field 'questions'\n  must be a list"))
    assert main(["concepts"]) == 2
    assert _error_line(capsys) == "error: concept.json: field 'questions' must be a list"


def test_a_missing_optional_module_says_how_to_install_it(capsys, monkeypatch):
    _raising(monkeypatch, ModuleNotFoundError("No module named 'psycopg2'", name="psycopg2"))
    assert main(["concepts"]) == 2
    line = _error_line(capsys)
    assert "'psycopg2'" in line and "install" in line


def test_library_errors_are_clean_but_programming_errors_keep_their_traceback(capsys, monkeypatch):
    _raising(monkeypatch, JudgeAuthError("No API key for the judge: set OPENAI_API_KEY"))
    assert main(["concepts"]) == 2
    assert _error_line(capsys) == "error: No API key for the judge: set OPENAI_API_KEY"
    _raising(monkeypatch, ZeroDivisionError("division by zero"))
    with pytest.raises(ZeroDivisionError):
        main(["concepts"])


def test_warnings_are_one_line_each(capsys, monkeypatch):
    def warn(args):
        warnings.warn("generations.json is corrupt\n  (truncated); regenerating", stacklevel=1)
        return 0

    monkeypatch.setattr(steerkit.cli.concepts, "_cmd_concepts", warn)
    assert main(["concepts"]) == 0
    assert capsys.readouterr().err == "warning: generations.json is corrupt (truncated); regenerating\n"


@pytest.mark.parametrize("command", ["run", "extract"])
def test_a_second_run_on_the_same_concept_folder_is_refused_before_it_computes_anything(command, tmp_path, capsys,
                                                                                       monkeypatch, tiny_llama):
    """Two processes on one OUT/<concept> would overwrite each other's caches; the one holding
    the folder's lock (here: this test) wins, the other stops before generating anything."""
    import steerkit.workflow
    from steerkit._lock import exclusive

    monkeypatch.setattr(steerkit.lm, "load_model", lambda *a, **k: tiny_llama)
    monkeypatch.setattr(steerkit.workflow, "contrastive_answers", lambda *a, **k: pytest.fail("answers generated"))
    folder = tmp_path / "formal"
    with exclusive(folder / ".lock", folder):
        assert main([command, "formal", "--out", str(tmp_path)]) == 2
    error = capsys.readouterr().err.splitlines()[-1]
    assert error.startswith("error: another steerkit process is using") and str(folder) in error
