"""Contrastive generation: every question answered under every instruction pair, pos and neg."""

from __future__ import annotations

import os
import warnings

import pandas as pd

from steerkit._caches import digest, read_json_cache
from steerkit._io import write_json
from steerkit.activations.activation_set import ActivationSet
from steerkit.activations.extraction import extract_activations
from steerkit.lm.generation import generate
from steerkit.lm.language_model import prompt_label


def contrastive_prompts(concept, *, split: str = "extraction", n_questions: int | None = None) -> pd.DataFrame:
    """The contrastive design as a table, one row per sample (no generation yet).

    Columns: ``question_id, instruction_id, contrast_id, y, system, question``. The contrast
    id is ``question_id * n_pairs + instruction_id``; ``y`` is 1 for the positive instruction.
    """
    if split not in ("extraction", "evaluation"):
        raise ValueError(f"split must be 'extraction' or 'evaluation', got {split!r}")
    questions = concept.extraction_questions if split == "extraction" else concept.evaluation_questions
    if n_questions is not None:
        if n_questions < 1:
            raise ValueError(f"n_questions must be >= 1, got {n_questions}")
        questions = questions[:n_questions]
    rows = []
    for q_id, question in enumerate(questions):
        for p_id, pair in enumerate(concept.instruction_pairs):
            for label, system in ((1, pair.pos), (0, pair.neg)):
                rows.append((q_id, p_id, q_id * concept.n_pairs + p_id, label, system, question))
    return pd.DataFrame(rows, columns=["question_id", "instruction_id", "contrast_id", "y", "system", "question"])


def generate_contrastive(
    lm,
    concept,
    *,
    n_questions: int | None = None,
    max_new_tokens: int = 64,
    batch_size: int = 16,
    role: str = "system",
    progress: bool = True,
    checkpoint: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """Greedy answers for the contrastive design of ``concept``'s extraction questions.

    ``role`` places each instruction as the system prompt (``"system"``, GRACE) or before
    the question in the user turn (``"user"``, followed far better by small models).
    Every prompt is checked against the model's context before anything is generated.
    ``checkpoint`` is a JSON file that keeps the answers of every finished batch: a call
    interrupted (Ctrl-C, a crash) and repeated with the same arguments generates only the
    batches still missing. It stays on disk; delete it once the result is saved.
    Returns :func:`contrastive_prompts`'s table plus ``prompt`` (the formatted prompt) and
    ``response`` (the answer text).
    """
    samples = contrastive_prompts(concept, n_questions=n_questions)
    samples["prompt"] = [lm.chat_prompt(q, s, role=role) for q, s in zip(samples["question"], samples["system"])]
    key = digest([lm.name, str(lm.dtype), list(samples["prompt"]), max_new_tokens])

    def save(answers: dict[int, str]) -> None:
        write_json(checkpoint, {"digest": key, "answers": answers})

    samples["response"] = generate(
        lm, list(samples["prompt"]), max_new_tokens=max_new_tokens, batch_size=batch_size,
        progress=progress, desc=f"generating {concept.name}",
        labels=[prompt_label(q, s) for q, s in zip(samples["question"], samples["system"])],
        finished=None if checkpoint is None else read_json_cache(checkpoint, key, _checkpointed_answers),
        on_batch=None if checkpoint is None else save,
    )
    return samples


def _checkpointed_answers(content: dict) -> dict[int, str]:
    """Prompt index -> answer of a generation checkpoint (TypeError when one is not text)."""
    answers = {int(index): answer for index, answer in content["answers"].items()}
    if not all(isinstance(answer, str) for answer in answers.values()):
        raise TypeError("answers must be strings")
    return answers


def complete_contrasts(samples: pd.DataFrame) -> pd.DataFrame:
    """Drop contrasts where either answer is empty (response_avg would be undefined)."""
    empty = samples["response"].fillna("").str.strip() == ""
    bad = set(samples.loc[empty, "contrast_id"])
    if bad:
        warnings.warn(f"dropping {len(bad)} contrast(s) with an empty answer: ids {sorted(bad)[:10]}", stacklevel=2)
    return samples[~samples["contrast_id"].isin(bad)].reset_index(drop=True)


def build_activation_set(
    lm, samples: pd.DataFrame, *, concept: str | None = None, batch_size: int = 16, progress: bool = True,
    component: str = "residual",
) -> ActivationSet:
    """Extract pooled activations for a table from :func:`generate_contrastive` at every layer
    of ``component`` (see :func:`~steerkit.activations.extract_activations`)."""
    samples = complete_contrasts(samples)
    if samples.empty:
        raise ValueError("no complete contrast left to extract (all answers were empty)")
    arrays = extract_activations(
        lm, list(samples["prompt"]), list(samples["response"]), batch_size=batch_size, progress=progress,
        component=component,
    )
    return ActivationSet(
        arrays,
        y=samples["y"].to_numpy(),
        question_ids=samples["question_id"].to_numpy(),
        instruction_ids=samples["instruction_id"].to_numpy(),
        contrast_ids=samples["contrast_id"].to_numpy(),
        model_name=lm.name,
        concept=concept,
        component=component,
        samples=samples[["question_id", "instruction_id", "contrast_id", "y", "system", "question", "response"]],
    )

