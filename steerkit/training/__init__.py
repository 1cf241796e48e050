"""Steering trained by gradient descent: data, training loop, trained steerers, tasks."""

from steerkit.training._base import TrainedSteerer
from steerkit.training.bipo import BiPOSteerer
from steerkit.training.listops import (
    ListOpsExample,
    ListOpsSplits,
    evaluate_listops,
    generate_listops,
    listops_accuracy,
    listops_completion,
    listops_prompt,
    listops_splits,
    parse_listops_answer,
)
from steerkit.training.lora import LoRAFineTuner, rank_matching
from steerkit.training.loop import TrainingDiverged, TrainingHistory, TrainingSettings, frozen, optimise
from steerkit.training.low_rank import LowRankSteerer
from steerkit.training.preference_data import PreferenceData, preference_data_from_concept
from steerkit.training.reps import RePSSteerer

__all__ = [
    "ListOpsExample", "ListOpsSplits", "LowRankSteerer", "TrainedSteerer", "TrainingDiverged", "TrainingHistory", "TrainingSettings",
    "evaluate_listops", "frozen", "generate_listops", "listops_accuracy", "listops_completion",
    "listops_prompt", "listops_splits", "optimise", "parse_listops_answer",
    "BiPOSteerer", "PreferenceData", "RePSSteerer", "preference_data_from_concept",
    "LoRAFineTuner", "rank_matching",
]
