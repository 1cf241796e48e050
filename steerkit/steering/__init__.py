"""Forward hooks that read or steer the residual stream, and the ``SteeredModel`` estimator."""

from steerkit.steering.hooks import POSITION_MODES, Steering, add_residual_hook, record_activations, steer
from steerkit.steering.prompting import PromptSteerer
from steerkit.steering.steered_model import SteeredModel

__all__ = ["POSITION_MODES", "PromptSteerer", "SteeredModel", "Steering", "add_residual_hook", "record_activations", "steer"]
