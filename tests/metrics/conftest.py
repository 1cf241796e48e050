"""A small real contrastive set for the judge tests (embedded model)."""

import pytest

from steerkit.activations import contrastive_prompts
from steerkit.concepts import load_concept
from steerkit.lm.generation import generate


@pytest.fixture(scope="session")
def shakespearean_samples(smollm):
    """6 extraction questions x 5 instruction pairs x (pos, neg) answers, 32 new tokens.

    The instruction goes into the user turn rather than the system prompt: SmolLM2-135M mostly
    ignores system instructions (only ~10% of its pirate-instructed answers contain a single
    pirate word), so with system prompts the labels say little about the text and no judge
    can separate them. Columns: those of ``contrastive_prompts`` plus ``prompt``, ``response``.
    """
    concept = load_concept("shakespearean")
    samples = contrastive_prompts(concept, n_questions=6)
    samples["prompt"] = [smollm.chat_prompt(f"{instruction}\n\n{question}")
                         for instruction, question in zip(samples["system"], samples["question"])]
    samples["response"] = generate(smollm, list(samples["prompt"]), max_new_tokens=32, batch_size=30)
    return samples


@pytest.fixture(scope="session")
def held_out(shakespearean_samples):
    """``(train, test)``: questions 0-3 for training, questions 4-5 held out (non-empty answers)."""
    samples = shakespearean_samples
    train = samples[samples["question_id"] < 4]
    test = samples[(samples["question_id"] >= 4) & (samples["response"].str.strip() != "")]
    return train, test.reset_index(drop=True)
