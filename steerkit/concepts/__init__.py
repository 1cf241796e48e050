"""Concepts: instruction pairs, extraction/evaluation questions and judge rubric."""

from steerkit.concepts.bundled import list_concepts, load_concept
from steerkit.concepts.concept import Concept, ConceptError, InstructionPair

__all__ = ["Concept", "ConceptError", "InstructionPair", "list_concepts", "load_concept"]
