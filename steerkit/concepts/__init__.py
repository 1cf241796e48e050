"""Concepts: instruction pairs, extraction/evaluation questions and judge rubric."""

from steerkit.concepts.bundled import list_concepts, load_concept
from steerkit.concepts.concept import Concept, ConceptError, InstructionPair
from steerkit.concepts.scaffold import generate_concept, scaffold_concept

__all__ = [
    "Concept",
    "ConceptError",
    "InstructionPair",
    "generate_concept",
    "list_concepts",
    "load_concept",
    "scaffold_concept",
]
