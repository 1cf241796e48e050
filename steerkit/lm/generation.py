"""Batching helpers (length-sorted batches, right padding) and batched greedy generation with
left padding."""

from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm


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


@torch.inference_mode()
def generate(
    lm,
    prompts: list[str],
    *,
    max_new_tokens: int = 64,
    batch_size: int = 16,
    progress: bool = False,
    desc: str = "generating",
) -> list[str]:
    """Greedy continuations of already formatted ``prompts`` (see ``LanguageModel.chat_prompt``).

    Prompts are sorted by length into batches and left-padded; the attention mask keeps pad
    tokens out, so a prompt's answer does not depend on its batch-mates. Returns the decoded
    new text (special tokens removed, whitespace stripped), in the order of ``prompts``.
    """
    tokenizer = lm.tokenizer
    encoded = [tokenizer(p, add_special_tokens=lm.adds_special_tokens)["input_ids"] for p in prompts]
    answers: list[str] = [""] * len(prompts)
    pad_id = tokenizer.pad_token_id
    batches = length_sorted_batches([len(e) for e in encoded], batch_size)
    for batch in tqdm(batches, desc=desc, disable=not progress, unit="batch"):
        width = max(len(encoded[i]) for i in batch)
        input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for row, i in enumerate(batch):
            ids = encoded[i]
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
        for row, i in enumerate(batch):
            answers[i] = tokenizer.decode(output[row, width:], skip_special_tokens=True).strip()
    return answers
