"""Training throughput of a LowRankSteerer step against a bare forward+backward pass (issue 12).

Both sides process the same batch: ``--batch-size`` ListOps training examples (chat prompt +
answer digit + EOS) of the embedded model in float32, right-padded, and compute the same loss,
the mean negative log-likelihood of the answer tokens
(:func:`steerkit.lm.scoring.answer_log_probs`, logits kept only at the predicting positions).

- steerer: the optimiser steps of ``LowRankSteerer(rank=8, sites="blocks")`` fitted on those
  examples with ``batch_size`` = their number, ``gradient_accumulation=1`` and ``epochs`` =
  repeats, so every step is one forward with the 30 adapters hooked at the block outputs,
  one backward into the adapters, one AdamW step and the loop's bookkeeping, timed by
  :func:`~steerkit.training.loop.optimise` itself.
- bare: the model frozen, one trainable zero vector ``(d,)`` added to the input embeddings by a
  plain ``register_forward_hook`` on the embedding module (no steerkit interventions), then
  ``answer_log_probs`` -> loss -> ``backward()``. The gradient has to reach the embedding level,
  so the backward pass runs through every block, as the steerer's does down to block 1; no
  optimiser step.

Tokens are the non-padding tokens of the batch. Reported: medians over the repeats (the first
repeat of each side is a warm-up and not counted), tokens/s side by side and their ratio
(target >= 0.8). Peak memory: each side runs in its own child process; the reported number is
the growth of its peak resident set size (``resource.getrusage(...).ru_maxrss``) from just
before the first repeat to the end, i.e. the extra memory that training needs on top of the
loaded model and batch.

Run: python benchmarks/bench_training_throughput.py      (about 3 minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from steerkit import load_model
from steerkit._io import write_json
from steerkit.lm.scoring import AnswerBatch, answer_log_probs
from steerkit.training import LowRankSteerer, frozen, listops_completion, listops_prompt, listops_splits
from steerkit.training.data import encode_examples

RESULTS = Path(__file__).resolve().parent / "results"


def examples(n: int) -> tuple[list[str], list[str]]:
    train = listops_splits(n, 0, 0, seed=0, max_depth=2).train
    return [listops_prompt(e.expression) for e in train], [listops_completion(e.answer) for e in train]


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def steerer_side(lm, prompts, completions, repeats: int) -> dict:
    before = peak_rss_mib()
    steerer = LowRankSteerer(lm, rank=8, batch_size=len(prompts), gradient_accumulation=1, epochs=repeats + 1,
                             warmup_ratio=0.0, progress=False).fit(prompts, completions)
    history = steerer.history_
    seconds = history.seconds[1:]
    return {"tokens": history.tokens[1], "median_seconds": float(np.median(seconds)),
            "tokens_per_second": history.tokens[1] / float(np.median(seconds)),
            "peak_rss_growth_mib": peak_rss_mib() - before}


def bare_side(lm, prompts, completions, repeats: int) -> dict:
    prompt_ids, answer_ids = encode_examples(lm, prompts, completions)
    batch = AnswerBatch.of(prompt_ids, answer_ids, lm.tokenizer.pad_token_id)
    delta = torch.zeros(lm.hidden_size, requires_grad=True)
    handle = lm.model.get_input_embeddings().register_forward_hook(lambda module, args, output: output + delta)
    before = peak_rss_mib()
    seconds = []
    try:
        with frozen(lm.model), torch.enable_grad():
            for _ in range(repeats + 1):
                started = time.perf_counter()
                loss = -answer_log_probs(lm, batch).sum() / batch.n_answer_tokens.sum()
                loss.backward()
                delta.grad = None
                seconds.append(time.perf_counter() - started)
    finally:
        handle.remove()
    tokens = int(batch.lengths.sum())
    median = float(np.median(seconds[1:]))
    return {"tokens": tokens, "median_seconds": median, "tokens_per_second": tokens / median,
            "peak_rss_growth_mib": peak_rss_mib() - before}


def child(side: str, batch_size: int, repeats: int) -> None:
    torch.manual_seed(0)
    lm = load_model(dtype="float32")
    prompts, completions = examples(batch_size)
    result = (steerer_side if side == "steerer" else bare_side)(lm, prompts, completions, repeats)
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--side", choices=["steerer", "bare"], default=None, help=argparse.SUPPRESS)  # child process
    parser.add_argument("--out", type=Path, default=RESULTS / "training_throughput.json")
    args = parser.parse_args()
    if args.side:
        child(args.side, args.batch_size, args.repeats)
        return
    results = {}
    for side in ("bare", "steerer"):
        run = subprocess.run([sys.executable, __file__, "--side", side, "--batch-size", str(args.batch_size),
                              "--repeats", str(args.repeats)], capture_output=True, text=True, check=True)
        results[side] = json.loads(run.stdout.strip().splitlines()[-1])
        print(f"{side:>8}: {results[side]['tokens_per_second']:7.1f} tokens/s (median {results[side]['median_seconds']:.2f} s "
              f"for {results[side]['tokens']} tokens), peak RSS +{results[side]['peak_rss_growth_mib']:.0f} MiB",
              file=sys.stderr)
    ratio = results["steerer"]["tokens_per_second"] / results["bare"]["tokens_per_second"]
    print(f"steerer / bare: {ratio:.2f}x (target >= 0.8)", file=sys.stderr)
    write_json(args.out, {"model": "smollm2-135m-instruct", "dtype": "float32", "batch_size": args.batch_size,
                          "repeats": args.repeats, **results, "ratio": ratio})


if __name__ == "__main__":
    main()
