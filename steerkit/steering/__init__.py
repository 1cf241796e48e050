"""Steering for all rows alike (``Steering``, ``steer``; the hooks live in ``steerkit.lm.hooks``) and
the ``SteeredModel`` estimator; composition (``compose``) and schedules that switch vectors during
one generation (``SteeringSchedule``, ``generate_scheduled``); conditional steering (CAST,
``ConditionalSteering``)."""

from steerkit.steering.hooks import POSITION_MODES, Steering, add_residual_hook, record_activations, steer
from steerkit.steering.composition import compose
from steerkit.steering.conditional import ConditionalSteering
from steerkit.steering.prompting import PromptSteerer
from steerkit.steering.schedule import (
    AfterTokens,
    Phase,
    ProjectionCrosses,
    SteeringSchedule,
    TextMatches,
    generate_scheduled,
)
from steerkit.steering.steered_model import SteeredModel

__all__ = ["POSITION_MODES", "AfterTokens", "ConditionalSteering", "Phase", "ProjectionCrosses", "PromptSteerer", "SteeredModel", "Steering",
           "SteeringSchedule", "TextMatches", "add_residual_hook", "compose", "generate_scheduled", "record_activations",
           "steer"]
