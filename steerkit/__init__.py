"""steerkit: scikit-learn-style activation steering with GRACE geometric diagnostics.

Layer convention: layer ``l`` is the residual stream after decoder block ``l`` (1-based);
layer 0 is the embedding output, so activation arrays have ``L + 1`` layers. A ``Site``
adds the component (``"residual"``, ``"attn"``, ``"mlp"``) read or steered at a layer.
"""

from steerkit.activations import ActivationSet, build_activation_set, extract_activations, generate_contrastive
from steerkit.concepts import Concept, list_concepts, load_concept
from steerkit.estimators import ClusterSteerer, PCASteerer, PVSteerer, UnitMeanSteerer
from steerkit.lm import Intervening, LanguageModel, Site, intervene, load_model
from steerkit.lm.interventions import Ablate, AddVector, LearnedVector, LowRank, SetProjection, Window
from steerkit.steering import SteeredModel, Steering, record_activations, steer

__version__ = "0.1.0"

__all__ = [
    "Ablate",
    "ActivationSet",
    "AddVector",
    "ClusterSteerer",
    "Concept",
    "Intervening",
    "LanguageModel",
    "LearnedVector",
    "LowRank",
    "PCASteerer",
    "PVSteerer",
    "SetProjection",
    "Site",
    "SteeredModel",
    "Steering",
    "UnitMeanSteerer",
    "Window",
    "build_activation_set",
    "extract_activations",
    "generate_contrastive",
    "intervene",
    "list_concepts",
    "load_concept",
    "load_model",
    "record_activations",
    "steer",
]
