"""The prompting baseline: the concept's positive instruction as a system prompt."""

from __future__ import annotations

from sklearn.base import BaseEstimator


class PromptSteerer(BaseEstimator):
    """Answer with a system prompt instead of an activation change.

    Plugs into the same judges and searches as :class:`SteeredModel` (``fit`` is a no-op that
    accepts an ``ActivationSet``; ``generate`` answers questions). Without a system prompt it
    is the unsteered baseline.

    Parameters
    ----------
    model : :class:`steerkit.lm.LanguageModel`.
    system_prompt : the instruction, e.g. ``concept.instruction_pairs[0].pos``; ``None`` →
        plain, unsteered answers.
    role : ``"system"`` (system prompt) or ``"user"`` (before the question in the user turn);
        use the placement the steering vector was extracted with, for a fair comparison.
    max_new_tokens, batch_size : generation settings.
    """

    def __init__(self, model=None, system_prompt: str | None = None, role: str = "system",
                 max_new_tokens: int = 64, batch_size: int = 16):
        self.model = model
        self.system_prompt = system_prompt
        self.role = role
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size

    @classmethod
    def from_concept(cls, model, concept, pair: int = 0, **kwargs) -> "PromptSteerer":
        """Prompting baseline with the positive instruction of instruction pair ``pair``."""
        return cls(model, concept.instruction_pairs[pair].pos, **kwargs)

    def fit(self, X=None, y=None, **fit_params) -> "PromptSteerer":
        """Nothing to learn; present so searches and pipelines can treat it like a steerer."""
        if self.model is None:
            raise ValueError("PromptSteerer needs a model: PromptSteerer(model=load_model(), ...)")
        return self

    def generate(self, questions, *, progress: bool = False) -> list[str]:
        """Greedy answers under ``system_prompt`` (or none)."""
        if self.model is None:
            raise ValueError("PromptSteerer needs a model: PromptSteerer(model=load_model(), ...)")
        return self.model.generate(list(questions), self.system_prompt, role=self.role,
                                   max_new_tokens=self.max_new_tokens, batch_size=self.batch_size, progress=progress)
