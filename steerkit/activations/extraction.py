"""Pooled activation extraction: all layers, three positions, one batched forward pass.

Per-token activations are never stored: a hook on every block multiplies the block output
``(B, T, d)`` by a pooling matrix ``(B, 3, T)`` and keeps the ``(B, 3, d)`` result.
"""

from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from steerkit.lm.generation import length_sorted_batches
from steerkit.steering.hooks import add_residual_hook

POSITIONS = ("prompt_last", "prompt_avg", "response_avg")


def pooling_weights(prompt_lengths, total_lengths, width: int) -> torch.Tensor:
    """Pooling matrix of shape ``(B, 3, width)`` for right-padded sequences.

    Row 0 selects the last prompt token (``prompt_last``), row 1 averages the prompt tokens
    (``prompt_avg``), row 2 averages the response tokens (``response_avg``).
    """
    prompt = torch.as_tensor(prompt_lengths).unsqueeze(1)
    total = torch.as_tensor(total_lengths).unsqueeze(1)
    pos = torch.arange(width).unsqueeze(0)
    last = (pos == prompt - 1).float()
    in_prompt = (pos < prompt).float()
    in_response = ((pos >= prompt) & (pos < total)).float()
    weights = torch.stack([last, in_prompt / prompt, in_response / (total - prompt).clamp(min=1)], dim=1)
    return weights


def _tokenize_pairs(lm, prompts, responses) -> tuple[list[list[int]], list[int]]:
    tokenizer = lm.tokenizer
    sequences, prompt_lengths = [], []
    for index, (prompt, response) in enumerate(zip(prompts, responses, strict=True)):
        prompt_ids = tokenizer(prompt, add_special_tokens=lm.adds_special_tokens)["input_ids"]
        response_ids = [] if response is None else tokenizer(response, add_special_tokens=False)["input_ids"]
        if not prompt_ids:
            raise ValueError(f"prompt {index} tokenizes to zero tokens")
        if response is not None and not response_ids:
            raise ValueError(
                f"response {index} is empty, so response_avg is undefined; drop empty responses "
                "before extraction (generate_contrastive marks them in its 'empty' column)"
            )
        sequences.append(prompt_ids + response_ids)
        prompt_lengths.append(len(prompt_ids))
    return sequences, prompt_lengths


@torch.inference_mode()
def extract_activations(
    lm,
    prompts: list[str],
    responses: list[str] | None = None,
    *,
    batch_size: int = 16,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """Pooled residual-stream activations of ``prompt + response`` texts.

    Parameters
    ----------
    lm : :class:`steerkit.lm.LanguageModel`.
    prompts : formatted prompts (``lm.chat_prompt(question, system)``) or any texts, length ``n``.
    responses : the answers that follow each prompt, length ``n``, none empty; ``None`` reads
        the prompts alone (then only ``prompt_last`` and ``prompt_avg`` are returned).
    batch_size : sequences per forward pass (sorted by length to keep padding small).

    Returns
    -------
    ``{"prompt_last", "prompt_avg", "response_avg"}`` -> float32 arrays of shape
    ``(n, L + 1, d)`` in activation units; layer 0 is the embedding output.
    """
    sequences, prompt_lengths = _tokenize_pairs(lm, prompts, [None] * len(prompts) if responses is None else responses)
    positions = POSITIONS[:2] if responses is None else POSITIONS
    n, n_layers, d = len(sequences), lm.n_layers + 1, lm.hidden_size
    pooled = torch.zeros((n, n_layers, len(positions), d), dtype=torch.float32)
    state: dict[str, torch.Tensor] = {}

    def reader(layer):
        def fn(hidden):
            state["out"][:, layer] = torch.bmm(state["weights"], hidden).float()
        return fn

    handles = [add_residual_hook(lm, layer, reader(layer)) for layer in range(n_layers)]
    base = lm.model.base_model  # the decoder stack without the LM head: logits are never needed
    pad_id = lm.tokenizer.pad_token_id
    try:
        batches = length_sorted_batches([len(s) for s in sequences], batch_size)
        for batch in tqdm(batches, desc="extracting", disable=not progress, unit="batch"):
            lengths = [len(sequences[i]) for i in batch]
            width = max(lengths)
            input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
            attention = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):
                input_ids[row, : lengths[row]] = torch.tensor(sequences[i])
                attention[row, : lengths[row]] = 1
            weights = pooling_weights([prompt_lengths[i] for i in batch], lengths, width)
            state["weights"] = weights[:, : len(positions)].to(device=lm.device, dtype=lm.dtype)
            state["out"] = torch.zeros((len(batch), n_layers, len(positions), d), device=lm.device)
            base(input_ids=input_ids.to(lm.device), attention_mask=attention.to(lm.device), use_cache=False)
            pooled[torch.as_tensor(batch)] = state["out"].cpu()
    finally:
        for handle in handles:
            handle.remove()
    return {name: pooled[:, :, k].numpy() for k, name in enumerate(positions)}
