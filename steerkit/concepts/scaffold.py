"""New concepts: a scaffold to edit by hand, or a draft written by an OpenAI-compatible model."""

from __future__ import annotations

import json
import re

from steerkit._paths import safe_name
from steerkit.concepts.bundled import load_concept
from steerkit.concepts.concept import Concept, ConceptError

EVAL_PROMPT = (
    "You judge how strongly an answer shows this trait: {description}\n\n"
    "Question: {{question}}\nAnswer: {{answer}}\n\n"
    "Rate from 0 (not at all) to 100 (strongly and throughout). Reply with one integer only, "
    "or REFUSAL if the answer refuses to respond."
)

GENERATOR_PROMPT = """Write a steering concept for a language model as one JSON object and nothing else.
Concept name: {name}
Behaviour: {description}

Keys:
- "instruction": exactly 5 objects {{"pos": ..., "neg": ...}}; "pos" tells an assistant to strongly show the
  behaviour, "neg" is a matched instruction of similar length to not show it. Each 1-2 sentences, all different.
- "extraction_questions": {n} short everyday questions that do not mention the behaviour.
- "evaluation_questions": {n} other such questions (no overlap with the first list).
Write plain text only; no markdown fences."""


def scaffold_concept(name: str, description: str, *, questions_from: str = "formal") -> Concept:
    """A valid starting point to edit: templated instruction pairs for ``description`` and the
    everyday questions of a bundled concept (``questions_from``)."""
    source = load_concept(questions_from)
    angles = [
        ("Answer in a way that is strongly {d}.", "Answer in a plain, neutral way."),
        ("Let every sentence you write be {d}.", "Let every sentence you write be ordinary and neutral."),
        ("You are an assistant that is always {d}.", "You are an assistant that is always neutral and matter-of-fact."),
        ("Make it obvious from your tone that you are {d}.", "Keep your tone even and unremarkable."),
        ("Whatever the question, respond in a {d} manner.", "Whatever the question, respond in a standard manner."),
    ]
    d = description.rstrip(".")
    return Concept.from_dict({
        "name": name,
        "description": description,
        "category": "",
        "instruction": [{"pos": pos.format(d=d), "neg": neg} for pos, neg in angles],
        "extraction_questions": list(source.extraction_questions),
        "evaluation_questions": list(source.evaluation_questions),
        "eval_prompt": EVAL_PROMPT.format(description=description),
    }, source=f"scaffold:{name}")


def _json_object(text: str) -> dict:
    match = re.search(r"\{.*\}", text, flags=re.DOTALL)
    if not match:
        raise ConceptError("the model's answer holds no JSON object")
    try:
        return json.loads(match.group(0))
    except json.JSONDecodeError as err:
        raise ConceptError(f"the model's answer is not valid JSON ({err})") from None


def generate_concept(name: str, description: str, client, *, n_questions: int = 24, attempts: int = 2) -> Concept:
    """Draft a concept with an OpenAI-compatible model (``OpenAICompatibleClient``).

    ``name`` is checked first (it becomes a file name: see :func:`steerkit._paths.safe_name`).
    The answer is validated like a concept file; an invalid draft is asked for again up to
    ``attempts`` times, then the last validation error is raised.
    """
    safe_name(name, what="concept name")
    prompt = GENERATOR_PROMPT.format(name=name, description=description, n=n_questions)
    error: ConceptError | None = None
    for _ in range(attempts):
        text, _ = client.complete(prompt, max_tokens=4000)
        try:
            data = _json_object(text)
            data.update(name=name, description=description,
                        eval_prompt=data.get("eval_prompt") or EVAL_PROMPT.format(description=description))
            return Concept.from_dict(data, source=f"generated:{name}")
        except ConceptError as err:
            error = err
    raise error
