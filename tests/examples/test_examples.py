"""Every script in examples/ runs end to end (tiny random Llama saved to a folder, tiny sizes)."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import cloudpickle  # what joblib's loky backend pickles functions with
import pytest

from tests.conftest import build_tiny

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FAST = ["--n-questions", "2", "--max-new-tokens", "6"]


def load_example(name: str):
    """Import examples/<name>.py as a module (pickled by value, so joblib workers need no path)."""
    module_name = f"steerkit_example_{name}"
    spec = importlib.util.spec_from_file_location(module_name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    cloudpickle.register_pickle_by_value(module)
    return module


@pytest.fixture(scope="module")
def tokenizer():
    """The embedded model's tokenizer alone (no need to load its weights here)."""
    from transformers import AutoTokenizer

    from steerkit.lm.loading import DEFAULT_MODEL, convert_gguf, embedded_gguf_path

    return AutoTokenizer.from_pretrained(str(convert_gguf(embedded_gguf_path(DEFAULT_MODEL))))


@pytest.fixture(scope="module")
def tiny_folder(tokenizer, tmp_path_factory):
    """A 3-block random Llama with the embedded tokenizer, saved where load_model(path) finds it."""
    folder = tmp_path_factory.mktemp("tiny-llama")
    lm = build_tiny("llama", tokenizer)
    lm.model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def run(name: str, folder: str, *args: str) -> None:
    assert load_example(name).main(["--model", folder, *args]) == 0


def test_every_example_is_tested():
    tested = {"fit_and_steer", "fit_and_score", "pipeline", "parallel_concepts", "cross_validation", "monitoring"}
    assert {p.stem for p in EXAMPLES.glob("*.py")} == tested


def test_examples_document_themselves():
    for path in EXAMPLES.glob("*.py"):
        module = load_example(path.stem)
        assert module.__doc__ and "Takes about" in module.__doc__, path.name


def test_fit_and_steer(tiny_folder, capsys):
    run("fit_and_steer", tiny_folder, *FAST, "--n-eval", "1")
    out = capsys.readouterr().out
    for name in ("unsteered", "PVSteerer", "UnitMeanSteerer", "ClusterSteerer"):
        assert f"{name} |" in out


def test_fit_and_score(tiny_folder, capsys):
    run("fit_and_score", tiny_folder, *FAST, "--n-eval", "2")
    out = capsys.readouterr().out
    assert re.search(r"unsteered: utility +\d+\.\d", out)
    assert re.search(r"steered: utility +\d+\.\d", out)


def test_pipeline(tiny_folder, capsys):
    run("pipeline", tiny_folder, "--n-questions", "3", "--max-new-tokens", "6")
    out = capsys.readouterr().out
    assert re.search(r"held-out ROC AUC of the projection: [01]\.\d{3}", out)
    assert re.search(r"cross-validated ROC AUC over 3 question folds:( [01]\.\d{3}){3}", out)


def test_pipeline_reads_an_activation_file(tiny_folder, tmp_path, capsys):
    from steerkit import build_activation_set, generate_contrastive, load_concept, load_model

    lm = load_model(tiny_folder)
    samples = generate_contrastive(lm, load_concept("formal"), n_questions=2, max_new_tokens=6, progress=False)
    path = build_activation_set(lm, samples, concept="formal", progress=False).save(tmp_path / "acts")
    assert load_example("pipeline").main(["--activations", str(path), "--steerer", "pv", "--layer", "1"]) == 0
    assert "pv steerer at layer 1" in capsys.readouterr().out


def test_parallel_concepts(tiny_folder, capsys):
    run("parallel_concepts", tiny_folder, *FAST, "--concepts", "pirate", "formal", "--n-jobs", "2")
    out = capsys.readouterr().out
    rows = [line.split()[0] for line in out.splitlines()]
    assert "pirate" in rows and "formal" in rows
    assert "construction" in out and re.search(r"\b(pv|unit_mean|cluster)\b", out)


def test_cross_validation(tiny_folder, capsys):
    run("cross_validation", tiny_folder, *FAST, "--n-eval", "4", "--folds", "2", "--coefficients", "1", "2")
    out = capsys.readouterr().out
    assert re.search(r"SteeredModel\(layer=2, coefficient=2\): held-out utility \d+\.\d", out)
    assert re.search(r"nested GridSearchSteer .* held-out utility \d+\.\d", out)
    assert "best_params" in out


def test_monitoring(tiny_folder, capsys):
    run("monitoring", tiny_folder, "--n-questions", "4", "--max-new-tokens", "6")
    out = capsys.readouterr().out
    aucs = re.findall(r"layer +(\d+): ROC AUC ([01]\.\d{3})", out)
    assert [int(layer) for layer, _ in aucs] == [1, 2]  # 0.2..0.8 of 3 blocks, deduplicated
    assert "projection of a new positive answer" in out and "projection of a new negative answer" in out
