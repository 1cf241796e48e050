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
from steerkit.lm.language_model import prompt_label
from steerkit.lm.scoring import AnswerBatch, answer_log_probs, teacher_forced


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


def steered_answer_log_probs(lm, batch: AnswerBatch, interventions) -> torch.Tensor:
    """``(B,)`` summed answer log-probabilities (nats) of ``batch`` teacher-forced with
    ``interventions`` applied to every row, each at the positions its policy steers while
    generating (:func:`steerkit.lm.scoring.teacher_forced`). Differentiable in trainable
    interventions."""
    forced = teacher_forced(list(interventions), batch.prompt_lengths, batch.lengths, batch.input_ids.shape[1])
    with intervene(lm, forced):
        return answer_log_probs(lm, batch)


def completion_loss(lm, examples: list[tuple[list[int], list[int]]], indices,
                    interventions=()) -> tuple[torch.Tensor, int]:
    """``(loss, tokens)`` of ``examples[indices]`` (``(prompt ids, answer ids)`` pairs) for
    :func:`~steerkit.training.loop.optimise`: the causal-LM loss on the answer tokens only (mean
    negative log-likelihood per answer token, nats, prompt tokens masked) of the model steered by
    ``interventions`` (none: the model as it is, e.g. with LoRA adapters), and the prompt +
    answer tokens processed."""
    prompts, answers = zip(*(examples[i] for i in indices))
    batch = AnswerBatch.of(list(prompts), list(answers), lm.tokenizer.pad_token_id)
    log_probs = steered_answer_log_probs(lm, batch, interventions)
    return -log_probs.sum() / batch.n_answer_tokens.sum(), int(batch.lengths.sum())
