"""Preference triples (question, target answer, opposite answer) and how a concept makes them.

A concept's contrastive design answers every extraction question under the positive and the
negative instruction of every instruction pair (:mod:`steerkit.activations.contrastive`). One
contrast is one triple: the bare question, the answer given under the positive instruction
(the target a steered model should give without being told) and the one given under the
negative instruction (the opposite). The concept's evaluation questions never become triples:
they stay held out for judging the trained steerer.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from steerkit.activations.contrastive import complete_contrasts, generate_contrastive
from steerkit.lm.scoring import AnswerBatch, answer_log_probs
from steerkit.training.data import encode_examples

GENERATIONS_FILE = "generations.json"  # where `steerkit run` caches its contrastive answers
_GENERATION_COLUMNS = ("question_id", "instruction_id", "contrast_id", "y", "question", "response")


@dataclass(frozen=True)
class PreferenceData:
    """``n`` triples: ``questions[i]`` should be answered like ``targets[i]``, not like ``opposites[i]``.

    Each field is a tuple of ``n ≥ 1`` non-empty strings; a target never equals its opposite
    (a triple without a preference teaches nothing and makes RePS's loss push on one answer).

    Raises
    ------
    ValueError : different lengths, no triple, a non-string or empty text, or a triple whose
        target and opposite are the same text (one line naming the first such triple).
    """

    questions: tuple[str, ...]
    targets: tuple[str, ...]
    opposites: tuple[str, ...]

    def __post_init__(self):
        fields = {name: tuple(getattr(self, name)) for name in ("questions", "targets", "opposites")}
        lengths = {name: len(texts) for name, texts in fields.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"preference data needs one target and one opposite per question, got lengths {lengths}")
        if not fields["questions"]:
            raise ValueError("preference data has no triple: pass at least one (question, target, opposite)")
        for name, texts in fields.items():
            bad = next((i for i, text in enumerate(texts) if not (isinstance(text, str) and text.strip())), None)
            if bad is not None:
                raise ValueError(f"preference data field '{name}[{bad}]' is {texts[bad]!r}: every text must be a non-empty string")
            object.__setattr__(self, name, texts)
        same = [i for i, (t, o) in enumerate(zip(self.targets, self.opposites)) if t.strip() == o.strip()]
        if same:
            raise ValueError(f"preference data is unbalanced: {len(same)} of {len(self)} triples (first: {same[0]}) have "
                             "the same target and opposite answer; drop them or give two different answers")

    def __len__(self) -> int:
        return len(self.questions)


def as_preference_data(X, y=None) -> PreferenceData:
    """``X`` itself when it is :class:`PreferenceData` (then ``y`` must be None); otherwise
    ``X`` the questions and ``y`` an ``(n, 2)`` array-like of ``[target, opposite]`` answers."""
    if isinstance(X, PreferenceData):
        if y is not None:
            raise ValueError("fit got PreferenceData and y: pass either PreferenceData alone or questions X with "
                             "y = (n, 2) [target, opposite] answers")
        return X
    answers = np.asarray(y, dtype=object) if y is not None else None
    if answers is None or answers.ndim != 2 or answers.shape[1] != 2:
        raise ValueError(f"y must be an (n, 2) array of [target, opposite] answers, got "
                         f"{'None' if answers is None else f'shape {answers.shape}'}; or pass PreferenceData as X")
    return PreferenceData(tuple(X), tuple(answers[:, 0]), tuple(answers[:, 1]))


def stacked_batch(prompts, targets, opposites, indices, pad_id: int) -> AnswerBatch:
    """Examples ``indices`` (``b`` of them) as ``2b`` rows of one batch: each prompt with its
    target answer, then each prompt with its opposite answer (token-id lists)."""
    prompts = [prompts[i] for i in indices]
    answers = [targets[i] for i in indices] + [opposites[i] for i in indices]
    return AnswerBatch.of(prompts + prompts, answers, pad_id)


@dataclass(frozen=True)
class EncodedPreferences:
    """:class:`PreferenceData` as token ids, with the unsteered model's log-probabilities.

    prompts, targets, opposites : ``n`` token-id lists each (chat-formatted prompts; answers end
        with EOS, see :func:`~steerkit.training.data.encode_examples`).
    unsteered_targets, unsteered_opposites : ``(n,)`` float32 summed answer log-probabilities
        (nats) of the model without steering; computed once, they never change while training.
    """

    prompts: list[list[int]]
    targets: list[list[int]]
    opposites: list[list[int]]
    unsteered_targets: torch.Tensor
    unsteered_opposites: torch.Tensor

    def __len__(self) -> int:
        return len(self.prompts)

    def batch(self, indices, pad_id: int) -> AnswerBatch:
        """:func:`stacked_batch` of examples ``indices``: ``b`` target rows, then ``b`` opposite rows."""
        return stacked_batch(self.prompts, self.targets, self.opposites, indices, pad_id)


def encode_preferences(lm, data: PreferenceData, *, batch_size: int = 8) -> EncodedPreferences:
    """Token ids of ``data`` and the unsteered log-probabilities of its answers, scored in
    batches of ``batch_size`` examples under inference mode (no graph is kept)."""
    prompts, targets = encode_examples(lm, data.questions, data.targets)
    _, opposites = encode_examples(lm, data.questions, data.opposites)
    scores = []
    with torch.inference_mode():
        for start in range(0, len(prompts), batch_size):
            batch = stacked_batch(prompts, targets, opposites, range(start, min(start + batch_size, len(prompts))),
                                  lm.tokenizer.pad_token_id)
            scores.append(answer_log_probs(lm, batch).cpu().view(2, -1))
    unsteered = torch.cat(scores, dim=1)  # outside inference mode: an ordinary tensor
    return EncodedPreferences(prompts, targets, opposites, unsteered[0], unsteered[1])


def preference_data_from_concept(concept, lm=None, *, generations: str | os.PathLike | None = None,
                                 max_new_tokens: int = 48, n_questions: int | None = None, batch_size: int = 16,
                                 role: str = "user", progress: bool = True, contrast_ids=None) -> PreferenceData:
    """Triples from ``concept``'s extraction questions, one per (question, instruction pair).

    Parameters
    ----------
    concept : a :class:`~steerkit.concepts.Concept`.
    lm : the :class:`~steerkit.lm.LanguageModel` that answers when ``generations`` is None.
    generations : a ``steerkit run`` output folder of this concept (or its ``generations.json``):
        its cached contrastive answers are used and nothing is generated.
    max_new_tokens, batch_size, role, progress : how answers are generated
        (:func:`~steerkit.activations.generate_contrastive`; ``role="user"`` as ``steerkit run``).
    n_questions : use only the first ``n_questions`` extraction questions (None = all available).
    contrast_ids : use only these contrasts (None = all), e.g. the ``contrast_ids`` of the
        :class:`~steerkit.activations.ActivationSet` a run builds from those its judge filter kept.

    Contrasts with an empty answer are dropped with a warning (as for activations), and so are
    those whose two answers are the same text.

    Raises
    ------
    FileNotFoundError : ``generations`` has no ``generations.json``.
    ValueError : the generations file is unreadable, belongs to another concept, or answers a
        question that is not one of the concept's extraction questions; ``lm`` is missing.
    """
    if generations is not None:
        samples = _cached_samples(Path(generations), concept)
        if n_questions is not None:
            samples = samples[samples["question_id"] < n_questions]
    elif lm is None:
        raise ValueError("preference_data_from_concept needs lm (the model that answers) or generations (a run folder)")
    else:
        samples = generate_contrastive(lm, concept, n_questions=n_questions, max_new_tokens=max_new_tokens,
                                       batch_size=batch_size, role=role, progress=progress)
    if contrast_ids is not None:
        samples = samples[samples["contrast_id"].isin(set(np.asarray(contrast_ids).tolist()))]
    samples = complete_contrasts(samples)
    answers = samples.pivot(index="contrast_id", columns="y", values="response")
    questions = samples.drop_duplicates("contrast_id").set_index("contrast_id")["question"]
    same = answers[1].str.strip() == answers[0].str.strip()
    if same.any() and not same.all():
        warnings.warn(f"dropping {int(same.sum())} contrast(s) whose positive and negative answers are the same text: "
                      f"ids {sorted(answers.index[same])[:10]}", stacklevel=2)
        answers = answers[~same]
    return PreferenceData(tuple(questions[answers.index]), tuple(answers[1]), tuple(answers[0]))


def _cached_samples(path: Path, concept) -> pd.DataFrame:
    """The contrastive answers cached by ``steerkit run`` at ``path`` (a run folder or its file),
    checked to be answers to ``concept``'s extraction questions."""
    if path.is_dir():
        path = path / GENERATIONS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: pass the output folder of a `steerkit run` of this concept "
                                f"(it holds {GENERATIONS_FILE})")
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
        cached_concept = content["settings"]["concept"]["name"]
        samples = pd.DataFrame(content["samples"])
        missing = set(_GENERATION_COLUMNS) - set(samples.columns)
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path} is not a readable {GENERATIONS_FILE} ({type(error).__name__}: {error}); "
                         "re-create it with `steerkit run`") from None
    if missing:
        raise ValueError(f"{path} lacks the columns {sorted(missing)}; re-create it with `steerkit run`")
    if cached_concept != concept.name:
        raise ValueError(f"{path} holds answers for concept {cached_concept!r}, not {concept.name!r}: "
                         "pass the run folder of this concept")
    foreign = sorted(set(samples["question"]) - set(concept.extraction_questions))
    if foreign:
        raise ValueError(f"{path} answers {len(foreign)} question(s) that are not extraction questions of concept "
                         f"{concept.name!r} (first: {foreign[0][:60]!r}); evaluation questions stay held out, so "
                         "re-run `steerkit run` with this version of the concept")
    return samples
