"""A fast stand-in for a steered model whose utility landscape is known in closed form."""

from __future__ import annotations

from sklearn.base import BaseEstimator

from steerkit.metrics import make_steer_scorer

CALLS: list[tuple] = []


def true_utility(layer: int, coefficient: float, question: str) -> float:
    """Peak 90 at layer 7, coefficient 2; each question shifts it a little."""
    return 90.0 - 2.0 * (layer - 7) ** 2 - 10.0 * (coefficient - 2.0) ** 2 + (len(question) % 3)


class FakeSteered(BaseEstimator):
    """``generate`` encodes its parameters in the answer; ``CALLS`` logs every generation."""

    def __init__(self, layer=1, coefficient=1.0):
        self.layer = layer
        self.coefficient = coefficient

    def fit(self, activations=None, y=None):
        self.fitted_ = True
        return self

    def generate(self, questions):
        CALLS.append((self.layer, self.coefficient, tuple(questions)))
        return [f"{self.layer}|{self.coefficient}|{q}" for q in questions]


def _score(question: str, response: str) -> float:
    layer, coefficient, asked = response.split("|", 2)
    assert asked == question
    return true_utility(int(layer), float(coefficient), question)


fake_judge = make_steer_scorer(_score, name="fake")
QUESTIONS = [f"question number {i}{'?' * (i % 3)}" for i in range(9)]


def mean_utility(layer, coefficient, questions=QUESTIONS) -> float:
    return sum(true_utility(layer, coefficient, q) for q in questions) / len(questions)


class FakeShift:
    """A stand-in intervention: the configuration it steers with."""

    def __init__(self, layer, coefficient):
        self.layer, self.coefficient = layer, coefficient


class FakeLM:
    """A language model whose ``generate`` steers each row by its interventions; ``calls`` logs
    every call as a list of ``(question, (layer, coefficient) or None)`` rows."""

    def __init__(self):
        self.calls: list[list[tuple]] = []

    def __sklearn_clone__(self):
        return self  # shared, like a LanguageModel

    def generate(self, questions, system=None, *, max_new_tokens=64, batch_size=16, interventions=None):
        shifts = [(row[0].layer, row[0].coefficient) if row else None
                  for row in (interventions or [None] * len(questions))]
        self.calls.append(list(zip(questions, shifts)))
        return [f"{shift[0]}|{shift[1]}|{q}" if shift else f"0|0|{q}" for q, shift in zip(questions, shifts)]


class FakeBatchable(FakeSteered):
    """``FakeSteered`` answering through ``model`` (a :class:`FakeLM`) with ``interventions()``,
    so a search can answer several configurations in one per-row-steered generation."""

    def __init__(self, model=None, layer=1, coefficient=1.0, max_new_tokens=8, batch_size=4):
        super().__init__(layer, coefficient)
        self.model = model
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size

    def interventions(self):
        return [FakeShift(self.layer, self.coefficient)]

    def generate(self, questions):
        questions = list(questions)
        return self.model.generate(questions, max_new_tokens=self.max_new_tokens, batch_size=self.batch_size,
                                   interventions=[self.interventions()] * len(questions))
