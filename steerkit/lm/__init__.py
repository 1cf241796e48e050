"""Language models: loading, decoder-block and sublayer discovery, chat prompts, batched generation,
and the hooks that read and steer them at any site."""

from steerkit.lm import interventions
from steerkit.lm.blocks import BlocksNotFoundError, find_decoder_blocks
from steerkit.lm.generation import generate
from steerkit.lm.hooks import Intervening, intervene, record_activations
from steerkit.lm.language_model import LanguageModel
from steerkit.lm.loading import DEFAULT_MODEL, EMBEDDED_MODELS, load_model
from steerkit.lm.sites import Site, SublayerNotFoundError

__all__ = [
    "BlocksNotFoundError",
    "DEFAULT_MODEL",
    "EMBEDDED_MODELS",
    "Intervening",
    "LanguageModel",
    "Site",
    "SublayerNotFoundError",
    "find_decoder_blocks",
    "generate",
    "intervene",
    "interventions",
    "load_model",
    "record_activations",
]
