"""Change rate: the share (0–1) of prompts whose labelled output changes under steering.

A labeller turns an answer into a label: any callable ``text -> label``, a
:class:`KeywordLabeller` (does the text use one of the keywords?) or a :class:`JudgeLabeller`
(is a judge's 0–100 score at least a threshold?). The share comes with a Wilson confidence
interval, which stays inside [0, 1] and is honest at the small ``n`` of a sweep cell (seed
001 reports 0–100 % change rates over 6 prompts).
"""

from __future__ import annotations

import re
from typing import Callable, NamedTuple

import numpy as np
from statsmodels.stats.proportion import proportion_confint

from steerkit.metrics._scorer import SCORE_COLUMNS


class ChangeRate(NamedTuple):
    """``rate`` (share 0–1) of ``n`` prompts whose label changed (``n_changed``), with the
    Wilson interval ``[low, high]`` (shares 0–1)."""

    rate: float
    low: float
    high: float
    n_changed: int
    n: int


def change_rate(labels_before, labels_after, *, confidence: float = 0.95) -> ChangeRate:
    """Share of positions where ``labels_after[i] != labels_before[i]``, with its Wilson interval.

    Parameters
    ----------
    labels_before, labels_after : ``n`` labels each (any values comparable with ``!=``).
    confidence : coverage of the interval (0.95: a 95 % interval).
    """
    before, after = list(labels_before), list(labels_after)
    if len(before) != len(after) or not before:
        raise ValueError(f"labels_before has {len(before)} labels and labels_after {len(after)}: pass the same "
                         "non-zero number of labels, one pair per prompt")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1 (0.95 for a 95 % interval), got {confidence!r}")
    changed = sum(a != b for a, b in zip(before, after))
    low, high = proportion_confint(changed, len(before), alpha=1 - confidence, method="wilson")
    return ChangeRate(changed / len(before), float(low), float(high), changed, len(before))


class KeywordLabeller:
    """Labels a text True when it contains one of ``keywords`` as a whole word (or phrase),
    ignoring case unless ``case_sensitive``."""

    def __init__(self, keywords, *, case_sensitive: bool = False):
        self.keywords = [keywords] if isinstance(keywords, str) else list(keywords)
        if not self.keywords or not all(isinstance(k, str) and k.strip() for k in self.keywords):
            raise ValueError(f"keywords must be a non-empty list of non-blank strings, got {keywords!r}")
        pattern = r"\b(?:" + "|".join(re.escape(k.strip()) for k in self.keywords) + r")\b"
        self._pattern = re.compile(pattern, 0 if case_sensitive else re.IGNORECASE)

    def __call__(self, text: str) -> bool:
        return self._pattern.search(text) is not None


class JudgeLabeller:
    """Labels an answer True when ``judge`` (a :class:`~steerkit.metrics.SteerScorer`) scores its
    ``score`` column (``"concept"``, ``"coherence"`` or ``"utility"``, 0–100) at least
    ``threshold``; a missing (NaN) score is False."""

    def __init__(self, judge, *, threshold: float = 50.0, score: str = "concept"):
        if score not in SCORE_COLUMNS:
            raise ValueError(f"score must be one of {SCORE_COLUMNS}, got {score!r}")
        self.judge, self.threshold, self.score = judge, float(threshold), score

    def labels(self, questions: list[str], answers: list[str]) -> list[bool]:
        """One label per ``(question, answer)``, judged in one ``score_responses`` call."""
        scores = self.judge.score_responses(list(questions), list(answers))[self.score].to_numpy(dtype=float)
        return list(np.nan_to_num(scores, nan=-np.inf) >= self.threshold)


def _labels(labeller, questions: list[str], answers: list[str]) -> list:
    if isinstance(labeller, JudgeLabeller):
        return labeller.labels(questions, answers)
    return [labeller(answer) for answer in answers]


def steering_change_rate(lm, questions, interventions, labeller: Callable | JudgeLabeller, *,
                         max_new_tokens: int = 64, batch_size: int = 16, confidence: float = 0.95,
                         progress: bool = False) -> ChangeRate:
    """Change rate of ``lm``'s greedy answers to ``questions`` under ``interventions``.

    Every question is answered unsteered and steered in the same batches (per-row
    interventions: each answer is the one it gets alone); both answers are labelled with
    ``labeller`` and :func:`change_rate` compares the labels.
    """
    questions = list(questions)
    if not callable(labeller) and not isinstance(labeller, JudgeLabeller):
        raise ValueError(f"labeller must be a callable text -> label, a KeywordLabeller or a JudgeLabeller, got "
                         f"{type(labeller).__name__}")
    answers = lm.generate(questions + questions, max_new_tokens=max_new_tokens, batch_size=batch_size,
                          interventions=[None] * len(questions) + [list(interventions)] * len(questions),
                          progress=progress, desc="unsteered and steered answers")
    before = _labels(labeller, questions, answers[: len(questions)])
    after = _labels(labeller, questions, answers[len(questions):])
    return change_rate(before, after, confidence=confidence)
