"""Pooled activation extraction: all layers, three positions, one batched forward pass.

Per-token activations are never stored: a hook on every block multiplies the block output
``(B, T, d)`` by a pooling matrix ``(B, 3, T)`` and keeps the ``(B, 3, d)`` result. A token
prefix shared by several texts is run once; its pooled share is broadcast to every member and
each member continues from the prefix's key/value cache.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from tqdm.auto import tqdm

from steerkit.activations.prefixes import shared_prefix_groups
from steerkit.lm.generation import check_context, length_sorted_batches, right_padded
from steerkit.lm.hooks import add_site_hook
from steerkit.lm.sites import COMPONENTS, Site

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
    labels = [f"text {i} ({'prompt' if r is None else 'response'} {(p if r is None else r)[:60]!r})"
              for i, (p, r) in enumerate(zip(prompts, responses))]
    check_context(lm, [len(s) for s in sequences], labels)
    return sequences, prompt_lengths


@torch.inference_mode()
def extract_activations(
    lm,
    prompts: list[str],
    responses: list[str] | None = None,
    *,
    batch_size: int = 16,
    share_prefixes: bool = True,
    progress: bool = False,
    component: str = "residual",
) -> dict[str, np.ndarray]:
    """Pooled activations of ``prompt + response`` texts at every layer of one component.

    Parameters
    ----------
    lm : :class:`steerkit.lm.LanguageModel`.
    prompts : formatted prompts (``lm.chat_prompt(question, system)``) or any texts, length ``n``.
    responses : the answers that follow each prompt, length ``n``, none empty; ``None`` reads
        the prompts alone (then only ``prompt_last`` and ``prompt_avg`` are returned).
    batch_size : sequences per forward pass (sorted by length to keep padding small).
    share_prefixes : run a token prefix shared by several texts (chat header, instruction)
        once and continue every text from its key/value cache
        (:func:`~steerkit.activations.prefixes.shared_prefix_groups`). The result equals
        the plain pass up to float rounding; ``False`` reads every text in full.
    component : ``"residual"`` (the block outputs), ``"attn"`` or ``"mlp"`` (each block's
        sublayer output before it is added to the residual stream; see :mod:`steerkit.lm.sites`).

    Returns
    -------
    ``{"prompt_last", "prompt_avg", "response_avg"}`` -> float32 arrays of shape
    ``(n, L + 1, d)`` in activation units; index ``l`` is block ``l``'s site, index 0 the
    embedding output for ``"residual"`` and zeros for ``"attn"``/``"mlp"`` (no sublayer there).
    """
    if component not in COMPONENTS:
        raise ValueError(f"component must be one of {COMPONENTS}, got {component!r}")
    sequences, prompt_lengths = _tokenize_pairs(lm, prompts, [None] * len(prompts) if responses is None else responses)
    positions = POSITIONS[:2] if responses is None else POSITIONS
    n, n_layers, d = len(sequences), lm.n_blocks + 1, lm.hidden_size
    lengths, prompt_lengths = np.array([len(s) for s in sequences]), np.asarray(prompt_lengths)
    pooled = torch.zeros((n, n_layers, len(positions), d), dtype=torch.float32)
    state: dict[str, torch.Tensor] = {}

    def reader(layer):
        def fn(hidden):  # weights (B, P, T) @ hidden (B or 1, T, d): a shared prefix broadcasts
            state["out"][:, layer] = torch.matmul(state["weights"], hidden).float()
        return fn

    def run(rows, start: int, stop: int, **inputs):
        """Forward ``inputs`` (token positions ``start:stop`` of ``rows``), pooling into state."""
        weights = pooling_weights(prompt_lengths[rows], lengths[rows], stop)[:, : len(positions), start:]
        state["weights"] = weights.to(device=lm.device, dtype=lm.dtype)
        state["out"] = torch.zeros((len(rows), n_layers, len(positions), d), device=lm.device)
        return base(**{k: v.to(lm.device) if torch.is_tensor(v) else v for k, v in inputs.items()})

    groups = shared_prefix_groups(sequences) if share_prefixes else [(0, np.arange(n))]
    plan = [(prefix, members, batch) for prefix, members in groups
            for batch in length_sorted_batches(lengths[members] - prefix, batch_size)]
    first = 0 if component == "residual" else 1
    handles = [add_site_hook(lm, Site(layer, component), reader(layer)) for layer in range(first, n_layers)]
    base = lm.model.base_model  # the decoder stack without the LM head: logits are never needed
    pad_id = lm.tokenizer.pad_token_id
    try:
        cache, cached_group = None, None
        for prefix, members, batch in tqdm(plan, desc="extracting", disable=not progress, unit="batch"):
            if prefix and cached_group is not members:  # a new group: its prefix once, for all members
                ids = torch.tensor([sequences[members[0]][:prefix]])
                cache = run(members, 0, prefix, input_ids=ids, use_cache=True).past_key_values
                pooled[torch.as_tensor(members)] = state["out"].cpu()
                cached_group = members
            rows = members[batch]
            input_ids, attention = right_padded([sequences[i][prefix:] for i in rows], pad_id)
            inputs = {"input_ids": input_ids, "attention_mask": attention, "use_cache": False}
            if prefix:
                continued = copy.deepcopy(cache)
                continued.batch_repeat_interleave(len(rows))
                inputs.update(attention_mask=torch.cat([torch.ones((len(rows), prefix), dtype=torch.long), attention], 1),
                              past_key_values=continued, use_cache=True)
            run(rows, prefix, prefix + input_ids.shape[1], **inputs)
            pooled[torch.as_tensor(rows)] += state["out"].cpu()
    finally:
        for handle in handles:
            handle.remove()
    return {name: pooled[:, :, k].numpy() for k, name in enumerate(positions)}
