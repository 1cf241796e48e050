"""Training examples as token ids, and where steering acts when a sequence is teacher-forced.

A training example is a question and the completion the steered model should give. The
question is chat-formatted exactly as :meth:`~steerkit.lm.LanguageModel.generate` formats it,
and the completion ends with the tokenizer's end-of-sequence token, so a trained steerer also
learns to stop.
"""

from __future__ import annotations

import torch

from steerkit.lm.generation import check_context
from steerkit.lm.hooks import intervene
from steerkit.lm.interventions import Window, check_positions
from steerkit.lm.language_model import prompt_label
from steerkit.lm.scoring import AnswerBatch, answer_log_probs


def encode_examples(lm, questions, completions, *, system: str | None = None,
                    role: str = "system") -> tuple[list[list[int]], list[list[int]]]:
    """Token ids ``(prompts, answers)`` of ``n`` training examples.

    Parameters
    ----------
    questions, completions : ``n`` strings each; a completion must not be empty.
    system, role : an instruction placed as in :meth:`~steerkit.lm.LanguageModel.chat_prompt`.

    Raises
    ------
    ValueError : mismatched lengths, no examples, an empty completion, or a sequence longer
        than the model's context.
    """
    questions, completions = list(questions), list(completions)
    if len(questions) != len(completions):
        raise ValueError(f"got {len(questions)} prompts but {len(completions)} completions: pass one completion per prompt")
    if not questions:
        raise ValueError("there are no training examples: pass at least one prompt and completion")
    empty = [i for i, c in enumerate(completions) if not (isinstance(c, str) and c.strip())]
    if empty:
        raise ValueError(f"completion {empty[0]} (of {len(completions)}) is empty: every example needs a non-empty completion")
    tokenizer = lm.tokenizer
    prompts = [tokenizer(lm.chat_prompt(q, system, role=role), add_special_tokens=lm.adds_special_tokens)["input_ids"]
               for q in questions]
    end = [] if tokenizer.eos_token_id is None else [tokenizer.eos_token_id]
    answers = [tokenizer(c, add_special_tokens=False)["input_ids"] + end for c in completions]
    check_context(lm, [len(p) + len(a) for p, a in zip(prompts, answers)],
                  [f"training example {i} ({prompt_label(q)})" for i, q in enumerate(questions)])
    return prompts, answers


def teacher_forced_positions(positions, batch: AnswerBatch) -> torch.Tensor | None:
    """``(B, T)`` bool mask of where an intervention with position policy ``positions`` acts
    when ``batch`` is teacher-forced in one pass, as it would act during generation; None = all.

    ``"response"`` and ``"last"`` both become the positions that predict answer tokens: with a
    key/value cache, the last prompt token and then every new token are each the final position
    of their forward pass, so both policies steer exactly those positions while generating.
    """
    positions = check_positions(positions)
    width = batch.input_ids.shape[1]
    real = batch.attention.bool()
    index = torch.arange(width).unsqueeze(0)
    if isinstance(positions, torch.Tensor):
        raise ValueError("a (B, T) token mask cannot be used for training: use a position policy such as 'all'")
    if positions == "all":
        return None
    if positions in ("response", "last"):
        return batch.predicting_positions()
    if positions == "prompt":
        return index < batch.prompt_lengths.unsqueeze(1)
    if positions == "first":
        return real & (index == 0)
    assert isinstance(positions, Window)
    return real & (index >= positions.start) & (index < positions.end)


def steered_answer_log_probs(lm, batch: AnswerBatch, interventions) -> torch.Tensor:
    """``(B,)`` summed answer log-probabilities (nats) of ``batch`` teacher-forced with
    ``interventions`` applied to every row, each at the positions its policy steers while
    generating (:func:`teacher_forced_positions`). Differentiable in trainable interventions."""
    interventions = list(interventions)
    policies = {repr(i.positions) for i in interventions}
    if len(policies) > 1:
        raise ValueError(f"interventions trained together need one position policy, got {sorted(policies)}")
    with intervene(lm, interventions) as installed:
        if interventions:
            installed.token_mask = teacher_forced_positions(interventions[0].positions, batch)
            if installed.token_mask is not None:
                installed.token_mask = installed.token_mask.to(lm.device)
        return answer_log_probs(lm, batch)
