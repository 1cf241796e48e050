"""Contrastive generation, pooled activation extraction and ``ActivationSet``."""

from steerkit.activations.activation_set import LAYER_CONVENTION, ActivationSet
from steerkit.activations.contrastive import (
    build_activation_set,
    complete_contrasts,
    contrastive_prompts,
    generate_contrastive,
)
from steerkit.activations.extraction import POSITIONS, extract_activations, pooling_weights

__all__ = [
    "ActivationSet",
    "LAYER_CONVENTION",
    "POSITIONS",
    "build_activation_set",
    "complete_contrasts",
    "contrastive_prompts",
    "extract_activations",
    "generate_contrastive",
    "pooling_weights",
]
