import json

import pytest

from steerkit.activations import contrastive_prompts
from steerkit.concepts import Concept, ConceptError, list_concepts, load_concept

VALID = {
    "instruction": [{"pos": "Be a pirate.", "neg": "Be plain."}, {"pos": "Say arr.", "neg": "Say hello."}],
    "questions": ["q1", "q2", "q3", "q4"],
    "eval_prompt": "Rate {question} -> {answer}",
}


def test_bundled_concepts_load_and_follow_grace_shape():
    names = list_concepts()
    assert len(names) >= 10 and "pirate" in names
    for name in names:
        concept = load_concept(name)
        assert concept.name == name
        assert concept.n_pairs == 5
        assert len(concept.extraction_questions) >= 20 and len(concept.evaluation_questions) >= 20
        assert not set(concept.extraction_questions) & set(concept.evaluation_questions)
        concept.eval_prompt.format(question="q", answer="a")


def test_personavectors_shape_splits_questions_in_half(tmp_path):
    path = tmp_path / "pirate.json"
    path.write_text(json.dumps(VALID))
    concept = load_concept(path)
    assert concept.name == "pirate"
    assert concept.extraction_questions == ("q1", "q2") and concept.evaluation_questions == ("q3", "q4")


def test_round_trip(tmp_path):
    concept = Concept.from_dict(VALID, name="x")
    concept.save(tmp_path / "x.json")
    assert Concept.load(tmp_path / "x.json") == concept


@pytest.mark.parametrize(
    "patch, message",
    [
        ({"instruction": []}, r"bad\.json: field 'instruction' must be a non-empty list"),
        ({"instruction": [{"pos": "a", "neg": ""}]}, r"bad\.json: field 'instruction\[0\]\.neg' must be a non-empty string"),
        ({"questions": ["only one"]}, r"field 'questions' needs at least 2"),
        ({"questions": ["a", 3]}, r"field 'questions\[1\]' must be a non-empty string"),
        ({"eval_prompt": "Rate {answer}"}, r"bad\.json: field 'eval_prompt' must contain exactly the placeholders"),
        ({"extraction_questions": ["a"], "evaluation_questions": ["a"]}, r"must not overlap"),
        ({"extraction_questions": ["a"]}, r"field 'evaluation_questions' must be a non-empty list"),
    ],
)
def test_validation_errors_name_file_and_field(tmp_path, patch, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({**VALID, **patch}))
    with pytest.raises(ConceptError, match=message):
        load_concept(path)


def test_unknown_and_broken_files(tmp_path):
    with pytest.raises(ConceptError, match="unknown concept 'nope'.*Bundled concepts: .*pirate"):
        load_concept("nope")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ConceptError, match="broken.json: not valid JSON"):
        load_concept(broken)


def test_contrastive_design_covers_every_pair_question_and_sign():
    concept = Concept.from_dict(VALID, name="x")
    table = contrastive_prompts(concept)
    assert len(table) == 2 * 2 * 2  # questions x pairs x {pos, neg}
    assert (table.groupby("contrast_id")["y"].agg(sorted).map(tuple) == (0, 1)).all()
    pos = table[(table.y == 1) & (table.instruction_id == 1)]
    assert set(pos.system) == {"Say arr."} and set(pos.question) == {"q1", "q2"}
    assert len(contrastive_prompts(concept, split="evaluation", n_questions=1)) == 4
