"""PreferenceData validation and triples from a concept's contrastive answers (cached or generated)."""

import json

import pytest

from steerkit.concepts import Concept
from steerkit.run_settings import RunSettings
from steerkit.training.preference_data import PreferenceData, preference_data_from_concept
from steerkit.workflow import contrastive_answers


@pytest.fixture(scope="module")
def concept():
    return Concept.from_dict({
        "name": "tiny-pirate",
        "instruction": [{"pos": "You are a pirate. Always answer as a pirate would.", "neg": "Talk plainly."},
                        {"pos": "Answer like an old sea captain, with salty words.",
                         "neg": "Be a clerk and answer in short dry words, no more."}],
        "extraction_questions": ["What is rain?", "Name a fruit.", "How far is the moon?"],
        "evaluation_questions": ["Why is the sea salty?", "What is a bird?"],
        "eval_prompt": "{question} {answer}",
    })


def test_preference_data_accepts_triples_as_tuples():
    data = PreferenceData(["q1", "q2"], ["arr", "ahoy"], ["yes", "hello"])
    assert len(data) == 2 and data.targets == ("arr", "ahoy") and isinstance(data.questions, tuple)


@pytest.mark.parametrize("fields, message", [
    ((["q"], ["a", "b"], ["c"]), "lengths"),
    (([], [], []), "no triple"),
    ((["q", " "], ["a", "b"], ["c", "d"]), "'questions[1]'"),
    ((["q"], [None], ["c"]), "'targets[0]'"),
    ((["q", "r"], ["same", "x"], ["same ", "y"]), "unbalanced: 1 of 2 triples (first: 0)"),
    ((["q", "r"], ["a", "b"], ["a", "b"]), "unbalanced: 2 of 2"),
])
def test_bad_preference_data_is_a_one_line_error(fields, message):
    with pytest.raises(ValueError, match="preference data") as error:
        PreferenceData(*fields)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_generated_triples_pair_each_contrast_and_keep_evaluation_questions_out(tiny_llama, concept):
    data = preference_data_from_concept(concept, tiny_llama, max_new_tokens=8, n_questions=2, progress=False)
    assert len(data) == 2 * concept.n_pairs
    assert set(data.questions) == set(concept.extraction_questions[:2])
    assert not set(data.questions) & set(concept.evaluation_questions)
    assert data.questions[:2] == (concept.extraction_questions[0],) * 2  # contrast id order: question, then pair
    # the target of (question 0, pair 1) is the model's answer under pair 1's positive instruction
    expected = tiny_llama.generate([concept.extraction_questions[0]], concept.instruction_pairs[1].pos,
                                   role="user", max_new_tokens=8)
    assert data.targets[1] == expected[0]


def test_cached_run_generations_give_the_same_triples_without_a_model(tiny_llama, concept, tmp_path):
    settings = RunSettings(n_questions=2, max_new_tokens=8, batch_size=8)
    contrastive_answers(tiny_llama, concept, tmp_path, settings, progress=False)
    cached = preference_data_from_concept(concept, generations=tmp_path)
    assert cached == preference_data_from_concept(concept, tiny_llama, max_new_tokens=8, n_questions=2, progress=False)
    assert cached == preference_data_from_concept(concept, generations=tmp_path / "generations.json")
    assert len(preference_data_from_concept(concept, generations=tmp_path, n_questions=1)) == concept.n_pairs


def _write_generations(path, concept_name, rows):
    columns = ("question_id", "instruction_id", "contrast_id", "y", "question", "response")
    path.write_text(json.dumps({"digest": "x", "settings": {"concept": {"name": concept_name}},
                                "samples": [dict(zip(columns, row)) for row in rows]}))


def test_cached_contrasts_with_empty_or_identical_answers_are_dropped(concept, tmp_path):
    q0, q1 = concept.extraction_questions[:2]
    _write_generations(tmp_path / "generations.json", concept.name, [
        (0, 0, 0, 1, q0, "Arr, water."), (0, 0, 0, 0, q0, "Water."),
        (0, 1, 1, 1, q0, "Same."), (0, 1, 1, 0, q0, "Same."),
        (1, 0, 2, 1, q1, ""), (1, 0, 2, 0, q1, "An apple."),
        (1, 1, 3, 0, q1, "A pear."), (1, 1, 3, 1, q1, "A grog pear, matey."),
    ])
    with pytest.warns(UserWarning) as warned:
        data = preference_data_from_concept(concept, generations=tmp_path)
    assert {"empty", "same text"} <= {word for w in warned for word in ("empty", "same text") if word in str(w.message)}
    assert data == PreferenceData((q0, q1), ("Arr, water.", "A grog pear, matey."), ("Water.", "A pear."))


def test_cached_generations_of_another_concept_or_with_held_out_questions_are_refused(concept, tmp_path):
    path = tmp_path / "generations.json"
    question = concept.extraction_questions[0]
    _write_generations(path, "other", [(0, 0, 0, 1, question, "a"), (0, 0, 0, 0, question, "b")])
    with pytest.raises(ValueError, match="concept 'other', not 'tiny-pirate'"):
        preference_data_from_concept(concept, generations=tmp_path)
    held_out = concept.evaluation_questions[0]
    _write_generations(path, concept.name, [(0, 0, 0, 1, held_out, "a"), (0, 0, 0, 0, held_out, "b")])
    with pytest.raises(ValueError, match="not extraction questions.*held out"):
        preference_data_from_concept(concept, generations=tmp_path)


def test_missing_or_broken_generations_are_clear_errors(concept, tmp_path):
    with pytest.raises(FileNotFoundError, match="generations.json not found"):
        preference_data_from_concept(concept, generations=tmp_path)
    (tmp_path / "generations.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a readable generations.json"):
        preference_data_from_concept(concept, generations=tmp_path)
    with pytest.raises(ValueError, match="needs lm"):
        preference_data_from_concept(concept)
