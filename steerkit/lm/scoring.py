"""Teacher-forced scoring of answers given prompts: the log-probability of the answer tokens.

Sequences are ``prompt + answer`` token lists, right-padded, so real tokens keep their
positions and the attention mask keeps padding out: a sequence scores the same alone and in a
padded batch (float tolerance). Only the positions that predict answer tokens are projected
onto the vocabulary (``logits_to_keep``). Gradients flow when called outside
``torch.inference_mode`` (training steerers); scorers wrap it in inference mode.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch.nn import functional

from steerkit.lm.generation import right_padded


@dataclass
class AnswerBatch:
    """Right-padded ``prompt + answer`` sequences.

    input_ids, attention : ``(B, T)`` long tensors.
    prompt_lengths, lengths : ``(B,)`` long tensors: prompt tokens and prompt + answer tokens.
    """

    input_ids: torch.Tensor
    attention: torch.Tensor
    prompt_lengths: torch.Tensor
    lengths: torch.Tensor

    @classmethod
    def of(cls, prompts: list[list[int]], answers: list[list[int]], pad_id: int) -> "AnswerBatch":
        """Batch token-id lists; every prompt must be non-empty."""
        if any(not prompt for prompt in prompts):
            raise ValueError("every prompt needs at least one token (the answer is predicted from it)")
        input_ids, attention = right_padded([p + a for p, a in zip(prompts, answers, strict=True)], pad_id)
        return cls(input_ids, attention, torch.tensor([len(p) for p in prompts]), attention.sum(1))

    @property
    def n_answer_tokens(self) -> torch.Tensor:
        """``(B,)`` answer tokens per row."""
        return self.lengths - self.prompt_lengths

    def predicting_positions(self) -> torch.Tensor:
        """``(B, T)`` bool: the positions whose next token is an answer token (from the last
        prompt token to the second-to-last answer token), where response steering acts."""
        position = torch.arange(self.input_ids.shape[1]).unsqueeze(0)
        return (position >= self.prompt_lengths.unsqueeze(1) - 1) & (position < self.lengths.unsqueeze(1) - 1)


def answer_log_probs(lm, batch: AnswerBatch) -> torch.Tensor:
    """``(B,)`` float32 sum of the log-probabilities (nats) of each row's answer tokens.

    Rows with an empty answer get 0. Differentiable with respect to anything that changes the
    forward pass (trainable interventions); the model itself is used as it is.
    """
    width = batch.input_ids.shape[1]
    first = int(batch.prompt_lengths.min()) - 1  # the first position that predicts an answer token
    output = lm.model(input_ids=batch.input_ids.to(lm.device), attention_mask=batch.attention.to(lm.device),
                      logits_to_keep=width - first, use_cache=False)
    logits = output.logits[:, :-1].float()  # positions first .. width - 2 predict tokens first + 1 ..
    targets = batch.input_ids[:, first + 1 :].to(logits.device)
    token_log_probs = -functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
    predicting = batch.predicting_positions()[:, first:-1].to(logits.device)
    return (token_log_probs * predicting).sum(1)


def teacher_forced(interventions, prompt_lengths: torch.Tensor, lengths: torch.Tensor, width: int) -> list:
    """Copies of ``interventions`` that steer a right-padded teacher-forced batch where they
    steer during generation.

    In one forward pass over ``prompt + answer`` every position is a prefill position, so the
    policies that depend on prefill/decode get explicit ``(B, width)`` masks: ``"prompt"`` the
    prompt positions (``p < prompt_length``); ``"response"`` and ``"last"`` the last prompt
    position and every answer position (``prompt_length - 1 <= p < length``: with a key/value
    cache each of these is the final position of its forward pass when it is computed, so both
    policies steer exactly them while generating). ``"all"``, ``"first"``, a ``Window`` and a
    mask already mean the same there. The copies share parameters with the originals, so
    gradients reach trainable interventions. ``prompt_lengths`` and ``lengths``: ``(B,)``.
    """
    position = torch.arange(width).unsqueeze(0)
    masks = {"prompt": position < prompt_lengths.unsqueeze(1),
             "response": (position >= prompt_lengths.unsqueeze(1) - 1) & (position < lengths.unsqueeze(1))}
    masks["last"] = masks["response"]
    forced = []
    for intervention in interventions:
        if isinstance(intervention.positions, str) and intervention.positions in masks:
            intervention = copy.copy(intervention)
            intervention.positions = masks[intervention.positions]
        forced.append(intervention)
    return forced
