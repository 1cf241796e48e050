"""`steerkit train` end to end on the tiny random llama, `steerkit generate` with its files, bad input."""

import json

import pytest

from steerkit import cli
from steerkit.cli import main
from steerkit.training import (
    BiPOSteerer,
    LoRAFineTuner,
    LowRankSteerer,
    TrainedSteerer,
    listops_accuracy,
    listops_prompt,
    listops_splits,
    preference_data_from_concept,
)

HIDDEN, BLOCKS = 64, 3  # the tiny random llama
LISTOPS = ["--task", "listops", "--n-train", "8", "--n-test", "4", "--max-depth", "1", "--max-new-tokens", "3",
           "--epochs", "1", "--batch-size", "2"]  # 4 micro-batches
EXPECTED = {  # method -> (trainable parameters, class, file name in the method folder)
    "low-rank": (BLOCKS * 2 * HIDDEN * 2, LowRankSteerer, "steerer.safetensors"),  # rank 2: W_down + W_up per block
    "bipo": (HIDDEN, BiPOSteerer, "steerer.safetensors"),
    "lora": (None, LoRAFineTuner, "adapter"),
}


@pytest.fixture
def tiny_model(monkeypatch, tiny_llama):
    """Make every command load the tiny random llama instead of a real model."""
    monkeypatch.setattr(cli._inputs, "_load_model", lambda args, name: tiny_llama)
    return tiny_llama


def one_error_line(capsys, *needles):
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    for needle in needles:
        assert needle in err, err


def _test_split():
    split = listops_splits(8, 0, 4, seed=0, max_depth=1).test
    return [listops_prompt(e.expression) for e in split], [e.answer for e in split]


@pytest.mark.parametrize("method", ["low-rank", "bipo", "lora"])
def test_train_on_listops_writes_the_trained_file_curve_and_summary(method, tiny_model, tmp_path):
    extra = ["--rank", "2"] if method == "low-rank" else []
    assert main(["train", method, *LISTOPS, *extra, "--out", str(tmp_path)]) == 0
    folder = tmp_path / "listops" / method
    n_parameters, cls, file_name = EXPECTED[method]
    summary = json.loads((folder / "summary.json").read_text())
    assert (folder / "training_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    loader = LoRAFineTuner.load if method == "lora" else TrainedSteerer.load
    trained = loader(folder / file_name, tiny_model, progress=False)
    assert type(trained) is cls
    # the summary describes the saved training, and its accuracies are those of the saved files
    assert summary["method"] == method and summary["task"] == "listops" and summary["model"] == tiny_model.name
    steps = -(-4 // summary["settings"]["gradient_accumulation"])  # 4 micro-batches per optimiser step group
    assert summary["n_steps"] == steps == len(trained.history_.loss)
    assert summary["final_loss"] == trained.history_.loss[-1]
    assert summary["n_trainable_parameters"] == trained.n_trainable_parameters_
    if n_parameters is not None:
        assert trained.n_trainable_parameters_ == n_parameters
    assert summary["settings"]["epochs"] == 1 and summary["settings"]["batch_size"] == 2
    assert summary["tokens_per_second"] > 0 and summary["fit_seconds"] > 0
    prompts, targets = _test_split()
    assert summary["test_accuracy"] == listops_accuracy(trained.generate(prompts, max_new_tokens=3), targets)
    assert summary["unsteered_accuracy"] == listops_accuracy(tiny_model.generate(prompts, max_new_tokens=3), targets)


def test_lora_rank_defaults_to_the_block_adapters_parameter_count(tiny_model, tmp_path):
    from steerkit.training import rank_matching

    assert main(["train", "lora", *LISTOPS, "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "listops" / "lora" / "summary.json").read_text())
    block_adapter = BLOCKS * 2 * HIDDEN * 8  # rank 8 at every block output
    assert summary["settings"]["rank"] == rank_matching(tiny_model, block_adapter) > 1
    assert summary["n_trainable_parameters"] <= block_adapter


@pytest.mark.parametrize("method", ["low-rank", "lora"])
def test_generate_answers_with_a_trained_file(method, tiny_model, tmp_path):
    assert main(["train", method, *LISTOPS, "--out", str(tmp_path)]) == 0
    path = tmp_path / "listops" / method / EXPECTED[method][2]
    questions = ["Expression: [MAX 1 2 ]", "Expression: [SM 3 4 ]"]
    answers = tmp_path / "answers.json"
    args = ["generate", str(path), "-q", questions[0], "-q", questions[1], "--max-new-tokens", "4", "--compare"]
    assert main([*args, "--out", str(answers)]) == 0
    record = json.loads(answers.read_text())
    loader = LoRAFineTuner.load if method == "lora" else TrainedSteerer.load
    expected = loader(path, tiny_model, progress=False).generate(questions, max_new_tokens=4)
    assert [a["steered"] for a in record["answers"]] == expected
    assert [a["unsteered"] for a in record["answers"]] == tiny_model.generate(questions, max_new_tokens=4)
    assert record["method"] == EXPECTED[method][1].method


def test_generate_rescales_a_bipo_vector_with_coefficient(tiny_model, tmp_path):
    assert main(["train", "bipo", *LISTOPS, "--out", str(tmp_path)]) == 0
    path = tmp_path / "listops" / "bipo" / "steerer.safetensors"
    answers = tmp_path / "answers.json"
    assert main(["generate", str(path), "-q", "Expression: [MIN 5 2 ]", "--max-new-tokens", "4",
                 "--coefficient", "-3", "--out", str(answers)]) == 0
    steerer = TrainedSteerer.load(path, tiny_model, progress=False).set_params(coefficient=-3.0)
    assert json.loads(answers.read_text())["answers"][0]["steered"] == steerer.generate(["Expression: [MIN 5 2 ]"],
                                                                                         max_new_tokens=4)[0]


def test_train_on_a_concept_judges_the_runs_held_out_questions(tiny_model, tmp_path):
    from steerkit.concepts import load_concept

    args = ["train", "reps", "--task", "pirate", "--n-questions", "2", "--max-new-tokens", "4", "--epochs", "1",
            "--n-search-questions", "1", "--n-held-out", "2", "--out", str(tmp_path)]
    assert main(args) == 0
    assert (tmp_path / "pirate" / "generations.json").is_file()  # cached where `steerkit run` caches it
    summary = json.loads((tmp_path / "pirate" / "reps" / "summary.json").read_text())
    triples = preference_data_from_concept(load_concept("pirate"), generations=tmp_path / "pirate")
    assert summary["task"] == "pirate" and summary["n_triples"] == len(triples) <= 10  # 2 questions x 5 pairs
    assert set(summary["held_out"]) == {"unsteered", "prompting", "reps"}
    assert [a["question"] for a in summary["answers"]] == list(load_concept("pirate").evaluation_questions[1:3])
    steerer = TrainedSteerer.load(tmp_path / "pirate" / "reps" / "steerer.safetensors", tiny_model, progress=False)
    assert [a["reps"] for a in summary["answers"]] == steerer.generate(
        [a["question"] for a in summary["answers"]], max_new_tokens=4)


def test_train_on_a_concept_uses_only_the_contrasts_the_judge_filter_kept(tiny_model, tmp_path, monkeypatch):
    import pandas as pd

    from steerkit import workflow
    from steerkit.cli import train

    dropped = {0, 4, 9}  # of the 10 contrasts (2 questions x 5 pairs); 7 kept, enough not to fall back to all

    def judge_filter(samples, coherence, *, min_coherence, n_splits=4):
        samples = samples.assign(coherence=100.0, concept=100.0 * samples["y"])
        return samples.assign(passed=~samples["contrast_id"].isin(dropped), kept=~samples["contrast_id"].isin(dropped))

    fitted = []
    fit = train._fit
    monkeypatch.setattr(workflow, "judge_filter", judge_filter)
    monkeypatch.setattr(train, "_fit",
                        lambda estimator, method, data: fitted.append(data) or fit(estimator, method, data))
    assert main(["train", "reps", "--task", "pirate", "--n-questions", "2", "--max-new-tokens", "4", "--epochs", "1",
                 "--n-search-questions", "1", "--n-held-out", "2", "--out", str(tmp_path)]) == 0
    samples = pd.DataFrame(json.loads((tmp_path / "pirate" / "generations.json").read_text())["samples"])
    kept = samples[~samples["contrast_id"].isin(dropped)]
    answers = kept.pivot(index="contrast_id", columns="y", values="response")
    answers = answers[answers[1].str.strip() != answers[0].str.strip()]  # a triple needs two different answers
    questions = kept.drop_duplicates("contrast_id").set_index("contrast_id")["question"]
    [data] = fitted
    assert sorted(zip(data.questions, data.targets, data.opposites)) == sorted(
        zip(questions[answers.index], answers[1], answers[0]))
    summary = json.loads((tmp_path / "pirate" / "reps" / "summary.json").read_text())
    assert summary["n_triples"] == len(data) and summary["judge_filter"] == {"contrasts": 10, "kept": 7}


def test_unknown_method_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "dpo", "--task", "listops"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'dpo'" in capsys.readouterr().err


@pytest.mark.parametrize("args, needles", [
    (["low-rank", "--rank", "65"], ["rank must be an integer in 1..64"]),
    (["low-rank", "--layer", "2"], ["--layer applies to bipo and reps only"]),
    (["bipo", "--layer", "4"], ["--layer 4 is out of range"]),
])
def test_bad_options_give_one_error_line_and_write_nothing(args, needles, tiny_model, tmp_path, capsys):
    assert main(["train", *args, *LISTOPS, "--out", str(tmp_path)]) == 2
    one_error_line(capsys, *needles)
    assert not (tmp_path / "listops").exists()


def test_a_task_that_is_neither_listops_nor_a_concept_is_refused_before_loading(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(cli._inputs, "_load_model", lambda args, name: pytest.fail("the model was loaded"))
    assert main(["train", "low-rank", "--task", "list-ops", "--out", str(tmp_path)]) == 2
    one_error_line(capsys, "list-ops")
    assert not any(tmp_path.iterdir())
