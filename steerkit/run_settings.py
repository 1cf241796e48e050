"""The knobs of one ``steerkit run``: the one place their defaults are defined.

The command line reads its option defaults from :class:`RunSettings`, so this module stays
free of heavy imports (no torch): ``steerkit --help`` loads it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass


@dataclass
class RunSettings:
    """Knobs of one run (defaults: ≤ ~10 minutes per concept on 2 CPU cores)."""

    n_questions: int = 12          # extraction questions (× 5 pairs × pos/neg answers)
    max_new_tokens: int = 48       # answer length, extraction and evaluation
    budget: int = 30               # TPE trials
    seed: int = 0
    n_search_questions: int = 8    # evaluation questions judged in the search
    n_held_out: int = 8            # other evaluation questions for the final comparison
    batch_size: int = 32
    min_coherence: float = 50.0    # extraction answers below this are filtered (PersonaVectors)
    instruction_role: str = "user" # where instructions go; small models ignore system prompts

    # Fewest held-out questions for a comparison worth reading (the default split). A held-out
    # utility is a mean over questions, so its standard error falls as 1/√n: on 2 questions it
    # is twice that on 8, and the gaps between steered, unsteered and prompting get lost in it.
    MIN_HELD_OUT = 8

    def check_extraction(self, concept) -> None:
        """Raise a ValueError naming ``--n-questions`` when ``concept`` has fewer extraction
        questions, or when fewer than 2 would be used (the judge filter judges each question's
        answers with a judge trained on the other questions')."""
        available = len(concept.extraction_questions)
        if self.n_questions > available:
            raise ValueError(f"--n-questions {self.n_questions} but concept {concept.name!r} has {available} "
                             f"extraction questions; use at most {available} (0 = all)")
        if (self.n_questions or available) < 2:
            raise ValueError(f"--n-questions {self.n_questions or available}: the judge filter trains its concept "
                             "judge on the other questions' answers, so use at least 2")

    def check(self, concept, *, warn: bool = True) -> None:
        """Check these settings against ``concept`` before any model is loaded.

        Raises a ValueError naming the command-line option when the concept has too few
        extraction questions, or too few evaluation questions for ``n_search_questions`` plus
        ``n_held_out`` (at least one held-out question is needed). Warns (unless ``warn`` is
        False) when the held-out comparison rests on fewer than ``MIN_HELD_OUT`` questions.
        """
        self.check_extraction(concept)
        available = len(concept.evaluation_questions)
        counts = (f"--n-search-questions {self.n_search_questions} + --n-held-out {self.n_held_out} "
                  f"but concept {concept.name!r} has {available} evaluation questions")
        if self.n_search_questions >= available:
            raise ValueError(f"{counts}, so none is left for the held-out comparison; lower "
                             f"--n-search-questions to at most {available - 1}")
        if self.n_held_out < 1 or self.n_search_questions + self.n_held_out > available:
            raise ValueError(f"{counts}; set --n-held-out between 1 and {available - self.n_search_questions} "
                             f"or lower --n-search-questions")
        if warn and self.n_held_out < self.MIN_HELD_OUT:
            warnings.warn(f"the held-out comparison rests on {self.n_held_out} held-out questions (fewer than "
                          f"{self.MIN_HELD_OUT}), so its utilities are noisy; raise --n-held-out if the concept "
                          f"has questions to spare ({available} evaluation questions, {self.n_search_questions} "
                          f"used by the search)", stacklevel=2)
