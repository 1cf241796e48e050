"""Batched teacher-forced forward passes of a :class:`~steerkit.lm.LanguageModel` for the judges.

Sequences are right-padded, so real tokens keep their positions and the attention mask keeps
padding out: a sequence scores the same alone and in a padded batch (float tolerance). Only
the logits that are needed are projected onto the vocabulary (``logits_to_keep``). Answer
log-probabilities come from :mod:`steerkit.lm.scoring`, shared with training.
"""

from __future__ import annotations

import numpy as np
import torch

from steerkit.lm.generation import length_sorted_batches, right_padded
from steerkit.lm.scoring import AnswerBatch, answer_log_probs


def _logits(lm, input_ids, attention, logits_to_keep) -> torch.Tensor:
    output = lm.model(
        input_ids=input_ids.to(lm.device), attention_mask=attention.to(lm.device),
        logits_to_keep=logits_to_keep, use_cache=False,
    )
    return output.logits.float()


@torch.inference_mode()
def mean_token_log_likelihood(lm, prompts: list[list[int]], answers: list[list[int]], *, batch_size: int = 8) -> np.ndarray:
    """Mean log-probability (nats per token) of each answer given its prompt.

    Parameters
    ----------
    lm : :class:`steerkit.lm.LanguageModel`.
    prompts, answers : token ids, ``n`` each; the sequence scored is ``prompt + answer``.
        Prompts must be non-empty.
    batch_size : sequences per forward pass.

    Returns
    -------
    ``(n,)`` float array, ``≤ 0``; NaN for an empty answer.
    """
    result = np.full(len(prompts), np.nan)
    todo = [i for i, answer in enumerate(answers) if answer]
    for batch in length_sorted_batches([len(prompts[i]) + len(answers[i]) for i in todo], batch_size):
        rows = [todo[j] for j in batch]
        scored = AnswerBatch.of([prompts[i] for i in rows], [answers[i] for i in rows], lm.tokenizer.pad_token_id)
        means = answer_log_probs(lm, scored).cpu() / scored.n_answer_tokens
        result[rows] = means.double().numpy()
    return result


@torch.inference_mode()
def next_token_probabilities(lm, sequences: list[list[int]], token_ids, *, batch_size: int = 8) -> np.ndarray:
    """Probabilities of ``token_ids`` as the token following each sequence.

    Parameters
    ----------
    sequences : ``n`` non-empty lists of token ids (formatted prompts).
    token_ids : ``(k,)`` vocabulary ids to read.

    Returns
    -------
    ``(n, k)`` float array of probabilities (rows sum to at most 1).
    """
    token_ids = torch.as_tensor(np.asarray(token_ids), dtype=torch.long)
    result = np.zeros((len(sequences), len(token_ids)))
    pad_id = lm.tokenizer.pad_token_id
    for batch in length_sorted_batches([len(s) for s in sequences], batch_size):
        input_ids, attention = right_padded([sequences[i] for i in batch], pad_id)
        last = attention.sum(1) - 1
        kept = torch.unique(last)  # sorted distinct last positions: shape (m,)
        logits = _logits(lm, input_ids, attention, kept.to(lm.device))  # (B, m, V)
        rows = logits[torch.arange(len(batch)), torch.searchsorted(kept, last).to(logits.device)]
        probabilities = torch.softmax(rows, dim=-1)[:, token_ids.to(rows.device)]
        result[batch] = probabilities.double().cpu().numpy()
    return result
