"""Batching helpers (length-sorted batches, right padding) and batched generation with left
padding: greedy by default, or sampled per row (temperature, top-p, seed) with each row's own
random generator."""

from __future__ import annotations

import contextlib
import math
import numbers
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import LogitsProcessor, LogitsProcessorList, StoppingCriteriaList

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
    temperature=0.0,
    top_p=1.0,
    seed=None,
) -> list[str]:
    """Greedy or sampled continuations of already formatted ``prompts`` (see ``LanguageModel.chat_prompt``).

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

    ``temperature``, ``top_p`` and ``seed`` are one value for all prompts or a list with one
    per prompt. A prompt with temperature 0 (the default) is answered greedily; one with
    temperature > 0 samples each token from ``softmax(logits / temperature)`` restricted to
    its top-``top_p`` nucleus, drawing from its own ``torch.Generator`` seeded with its
    ``seed`` (None: fresh entropy, not reproducible). A seeded prompt gets the same answer
    alone or in any batch (up to float rounding of the logits); the global RNG is untouched.
    """
    sampling = _row_sampling(len(prompts), temperature, top_p, seed)
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
            sampler = RowSampler([sampling[i] for i in batch])
            batch_answers = _generate_batch(lm, [encoded[i] for i in batch], max_new_tokens,
                                            sampler if sampler.samples else None)
            for i, answer in zip(batch, batch_answers):
                answers[i] = done[int(i)] = answer
            if on_batch is not None:
                on_batch(dict(done))
    return answers


def _generate_batch(lm, encoded: list[list[int]], max_new_tokens: int, sampler: "RowSampler | None" = None, *,
                    stopping_criteria: list | None = None, decode: bool = True) -> list[str] | None:
    """Answers (decoded, stripped) to the token lists ``encoded``, left-padded into one greedy
    ``model.generate`` call; ``sampler`` picks the tokens of its sampling rows;
    ``stopping_criteria`` (transformers ``StoppingCriteria`` returning a ``(B,)`` bool tensor)
    end rows early, e.g. the per-row stops and streaming of :mod:`steerkit.serve.engine`.
    ``decode=False`` returns None, for callers that decode the tokens as they come."""
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
        logits_processor=None if sampler is None else LogitsProcessorList([sampler]),
        stopping_criteria=None if stopping_criteria is None else StoppingCriteriaList(stopping_criteria),
    )
    if not decode:
        return None
    return [lm.tokenizer.decode(row[width:], skip_special_tokens=True).strip() for row in output]


def _per_prompt(value, n: int, name: str) -> list:
    """``value`` repeated for ``n`` prompts, or the list itself when it has one entry per prompt."""
    if isinstance(value, (list, tuple, np.ndarray)):
        if len(value) != n:
            raise ValueError(f"{name} has {len(value)} entries but there are {n} prompts: pass one value or one per prompt")
        return list(value)
    return [value] * n


def _check_temperature(value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (math.isfinite(value) and value >= 0):
        raise ValueError(f"temperature must be a finite number >= 0 (0 = greedy), got {value!r}")
    return float(value)


def _check_top_p(value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value <= 1:
        raise ValueError(f"top_p must be a number in (0, 1] (1 = the whole vocabulary), got {value!r}")
    return float(value)


def _check_seed(value) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0):
        raise ValueError(f"seed must be a non-negative integer or None (not reproducible), got {value!r}")
    return None if value is None else int(value)


def _generator(seed: int | None) -> torch.Generator:
    """A CPU generator seeded with ``seed``, or with fresh entropy when None."""
    generator = torch.Generator()
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator


def _row_sampling(n: int, temperature, top_p, seed) -> list[tuple[float, float, torch.Generator] | None]:
    """Per prompt ``(temperature, top_p, generator)``, or None for a greedy prompt."""
    rows = zip(_per_prompt(temperature, n, "temperature"), _per_prompt(top_p, n, "top_p"), _per_prompt(seed, n, "seed"))
    settings = []
    for t, p, s in rows:
        t, p, s = _check_temperature(t), _check_top_p(p), _check_seed(s)
        settings.append((t, p, _generator(s)) if t > 0 else None)
    return settings


def sample_token(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator) -> int:
    """One token id drawn from ``softmax(logits / temperature)`` (``logits``: ``(V,)``) restricted
    to its nucleus: the most probable tokens until their probability reaches ``top_p``.

    One uniform number is drawn from ``generator`` (CPU) per call and mapped through the
    cumulative distribution (in vocabulary order, or by decreasing probability when
    ``top_p < 1``), so a row's draws depend only on its own seed and logits.
    """
    probabilities = torch.softmax(logits.float().cpu() / temperature, dim=-1).double().numpy()
    order = np.argsort(-probabilities, kind="stable") if top_p < 1 else np.arange(len(probabilities))
    ordered = probabilities[order]
    if top_p < 1:
        ordered = ordered * (np.cumsum(ordered) - ordered < top_p)
    cumulative = np.cumsum(ordered)
    draw = float(torch.rand((), generator=generator, dtype=torch.float64)) * cumulative[-1]
    return int(order[min(int(np.searchsorted(cumulative, draw, side="right")), len(order) - 1)])


class RowSampler(LogitsProcessor):
    """Makes a greedy ``model.generate`` sample its sampling rows: for row ``i`` with settings
    ``(temperature, top_p, generator)`` the next token is :func:`sample_token` and all other
    logits become ``-inf``, so the greedy step picks it; greedy rows (None) are untouched."""

    def __init__(self, rows: list[tuple[float, float, torch.Generator] | None]):
        self.rows = rows

    @property
    def samples(self) -> bool:
        """Whether any row samples."""
        return any(row is not None for row in self.rows)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        scores = scores.clone()
        for row, setting in enumerate(self.rows):
            if setting is not None:
                token = sample_token(scores[row], *setting)
                scores[row] = -math.inf
                scores[row, token] = 0.0
        return scores
