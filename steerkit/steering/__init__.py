"""Steering for all rows alike (``Steering``, ``steer``; the hooks live in ``steerkit.lm.hooks``) and
the ``SteeredModel`` estimator."""

from steerkit.steering.hooks import POSITION_MODES, Steering, add_residual_hook, record_activations, steer
from steerkit.steering.prompting import PromptSteerer
from steerkit.steering.steered_model import SteeredModel

__all__ = ["POSITION_MODES", "PromptSteerer", "SteeredModel", "Steering", "add_residual_hook", "record_activations", "steer"]
