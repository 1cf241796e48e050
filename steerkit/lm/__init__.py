"""Language models: loading, decoder-block, sublayer and final-norm discovery, chat prompts,
batched greedy or sampled generation, the unembedding, and the hooks that read and steer them at
any site."""

from steerkit.lm import interventions
from steerkit.lm.blocks import BlocksNotFoundError, find_decoder_blocks
from steerkit.lm.generation import generate
from steerkit.lm.hooks import Intervening, intervene, record_activations
from steerkit.lm.language_model import LanguageModel
from steerkit.lm.loading import DEFAULT_MODEL, EMBEDDED_MODELS, load_model
from steerkit.lm.sites import Site, SublayerNotFoundError
from steerkit.lm.unembed import FinalNormNotFoundError, find_final_norm, unembed

__all__ = [
    "BlocksNotFoundError",
    "DEFAULT_MODEL",
    "EMBEDDED_MODELS",
    "FinalNormNotFoundError",
    "Intervening",
    "LanguageModel",
    "Site",
    "SublayerNotFoundError",
    "find_decoder_blocks",
    "find_final_norm",
    "generate",
    "intervene",
    "interventions",
    "load_model",
    "record_activations",
    "unembed",
]
