"""Batching helpers (length-sorted batches, right padding) and batched greedy generation with
left padding."""

from __future__ import annotations

import contextlib
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from steerkit.lm.hooks import Intervening


def length_sorted_batches(lengths, batch_size: int) -> list[np.ndarray]:
    """Index batches of at most ``batch_size``, longest first, so padding stays small."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = np.argsort(-np.asarray(lengths), kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def right_padded(sequences: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ``(B, T)`` input ids and attention mask of token-id lists."""
    width = max(len(s) for s in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, ids in enumerate(sequences):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attention[row, : len(ids)] = 1
    return input_ids, attention


def check_context(lm, lengths, labels, *, max_new_tokens: int = 0) -> None:
    """Raise a ValueError for the first text that does not fit ``lm.context_length``.

    ``lengths`` are the texts' token counts, ``labels`` name them in the message (see
    :func:`~steerkit.lm.language_model.prompt_label`); generation reserves ``max_new_tokens``
    more positions for the answer. Nothing is checked when the model sets no limit.
    """
    limit = lm.context_length
    if limit is None:
        return
    for length, label in zip(lengths, labels, strict=True):
        if length + max_new_tokens > limit:
            answer = f" + max_new_tokens={max_new_tokens}" if max_new_tokens else ""
            remedy = "shorten it or lower max_new_tokens" if max_new_tokens else "shorten it"
            raise ValueError(f"{label} is {length} tokens{answer}, more than the model's context of "
                             f"{limit} tokens: {remedy}")


@torch.inference_mode()
def generate(
    lm,
    prompts: list[str],
    *,
    max_new_tokens: int = 64,
    batch_size: int = 16,
    progress: bool = False,
    desc: str = "generating",
    labels: list[str] | None = None,
    finished: dict[int, str] | None = None,
    on_batch: Callable[[dict[int, str]], None] | None = None,
    interventions: list | None = None,
) -> list[str]:
    """Greedy continuations of already formatted ``prompts`` (see ``LanguageModel.chat_prompt``).

    Prompts are sorted by length into batches and left-padded; the attention mask keeps pad
    tokens out, so a prompt's answer does not depend on its batch-mates. Returns the decoded
    new text (special tokens removed, whitespace stripped), in the order of ``prompts``.

    Every prompt is checked against the model's context (prompt tokens + ``max_new_tokens``)
    before anything is generated; ``labels`` name the prompts in that error (default: their
    first 60 characters). To resume an interrupted call, pass the answers it had ``finished``
    (prompt index -> text): batches whose prompts all have one are skipped, and the batches
    are the same as in the first call. ``on_batch`` is called after every generated batch
    with all answers so far (prompt index -> text), e.g. to checkpoint them.

    ``interventions`` steers each prompt its own way in the same batches: one entry per
    prompt, None (unsteered) or a list of :mod:`~steerkit.lm.interventions`. Each answer is
    the one that prompt gets generated alone with only its interventions.
    """
    tokenizer = lm.tokenizer
    encoded = [tokenizer(p, add_special_tokens=lm.adds_special_tokens)["input_ids"] for p in prompts]
    check_context(lm, [len(e) for e in encoded], labels or [f"prompt {p[:60]!r}" for p in prompts],
                  max_new_tokens=max_new_tokens)
    done = dict(finished or {})
    answers: list[str] = [done.get(i, "") for i in range(len(prompts))]
    batches = [batch for batch in length_sorted_batches([len(e) for e in encoded], batch_size)
               if not all(int(i) in done for i in batch)]
    if interventions is not None and len(interventions) != len(prompts):
        raise ValueError(f"interventions has {len(interventions)} entries but there are {len(prompts)} prompts: "
                         "pass one entry (None or a list of interventions) per prompt")
    with contextlib.ExitStack() as stack:
        installed = None if interventions is None else stack.enter_context(Intervening(lm))
        for batch in tqdm(batches, desc=desc, disable=not progress, unit="batch"):
            if installed is not None:
                installed.set_rows([interventions[i] for i in batch])
            for i, answer in zip(batch, _generate_batch(lm, [encoded[i] for i in batch], max_new_tokens)):
                answers[i] = done[int(i)] = answer
            if on_batch is not None:
                on_batch(dict(done))
    return answers


def _generate_batch(lm, encoded: list[list[int]], max_new_tokens: int) -> list[str]:
    """Greedy answers (decoded, stripped) to the token lists ``encoded``, left-padded into one
    ``model.generate`` call."""
    pad_id = lm.tokenizer.pad_token_id
    width = max(len(ids) for ids in encoded)
    input_ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(encoded), width), dtype=torch.long)
    for row, ids in enumerate(encoded):
        input_ids[row, width - len(ids) :] = torch.tensor(ids)
        attention[row, width - len(ids) :] = 1
    output = lm.model.generate(
        input_ids=input_ids.to(lm.device),
        attention_mask=attention.to(lm.device),
        max_new_tokens=max_new_tokens,
        do_sample=False,
        pad_token_id=pad_id,
        temperature=None,
        top_p=None,
        top_k=None,
    )
    return [lm.tokenizer.decode(row[width:], skip_special_tokens=True).strip() for row in output]
