import json

import pytest

from steerkit.cli import main
from steerkit.concepts import ConceptError, generate_concept, load_concept, scaffold_concept


class FakeClient:
    """Stands in for OpenAICompatibleClient: returns canned answers in order."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.prompts = []

    def complete(self, prompt, *, max_tokens=8):
        self.prompts.append(prompt)
        return self.answers.pop(0), None


GOOD = json.dumps({
    "instruction": [{"pos": f"Be grumpy {i}.", "neg": f"Be calm {i}."} for i in range(5)],
    "extraction_questions": ["How do I cook rice?", "Why is the sky blue?"],
    "evaluation_questions": ["What is a good hobby?", "How do magnets work?"],
})


def test_scaffold_is_a_valid_concept_to_edit(tmp_path):
    concept = scaffold_concept("grumpy", "grumpy and irritable")
    assert concept.n_pairs == 5 and "grumpy and irritable" in concept.instruction_pairs[0].pos
    concept.eval_prompt.format(question="q", answer="a")
    concept.save(tmp_path / "grumpy.json")
    assert load_concept(tmp_path / "grumpy.json") == concept


def test_generated_concept_is_validated_and_retried():
    client = FakeClient("Sure! Here it is: not json", "```json\n" + GOOD + "\n```")
    concept = generate_concept("grumpy", "grumpy and irritable", client)
    assert len(client.prompts) == 2 and "grumpy and irritable" in client.prompts[0]
    assert concept.name == "grumpy" and concept.n_pairs == 5
    assert "{question}" in concept.eval_prompt
    with pytest.raises(ConceptError, match="instruction"):
        generate_concept("x", "y", FakeClient('{"instruction": []}', '{"instruction": []}'))


def test_cli_lists_and_scaffolds(tmp_path, capsys):
    assert main(["concepts"]) == 0
    listing = capsys.readouterr().out
    assert listing.count("5 pairs") >= 10 and "pirate" in listing
    out = tmp_path / "grumpy.json"
    assert main(["new-concept", "grumpy", "--description", "grumpy", "--out", str(out)]) == 0
    assert load_concept(out).name == "grumpy"
    assert main(["new-concept", "grumpy", "--out", str(out)]) == 2  # never overwrites silently
    assert "exists" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["../x", "/abs", ".hidden", "a b"])
def test_unsafe_names_are_refused_before_the_model_is_asked(name):
    with pytest.raises(ValueError, match=r"cannot be used as a file or folder name"):
        scaffold_concept(name, "grumpy")
    client = FakeClient(GOOD)
    with pytest.raises(ValueError, match=r"concept name .* cannot be used as a file or folder name"):
        generate_concept(name, "grumpy", client)
    assert client.prompts == []
