"""Language models: loading, decoder-block discovery, chat prompts, batched generation."""

from steerkit.lm.blocks import BlocksNotFoundError, find_decoder_blocks
from steerkit.lm.generation import generate
from steerkit.lm.language_model import LanguageModel
from steerkit.lm.loading import DEFAULT_MODEL, EMBEDDED_MODELS, load_model

__all__ = [
    "BlocksNotFoundError",
    "DEFAULT_MODEL",
    "EMBEDDED_MODELS",
    "LanguageModel",
    "find_decoder_blocks",
    "generate",
    "load_model",
]
