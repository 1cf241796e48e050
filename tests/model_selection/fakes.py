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
