"""Hook costs on the embedded model: pooled extraction vs a bare forward pass, and steered vs
unsteered greedy generation.

- Extraction: ``extract_activations`` (all layers × 3 positions, pooling in the pass) with
  ``share_prefixes=False`` against ``model.base_model(...)`` alone on the same length-sorted
  batches (the hooks' cost: tokens/s and their ratio), and with shared prefixes (the default:
  what a user gets, counted in the texts' tokens).
- Steering: greedy generation with a steering hook installed vs without. The steering vector is
  zero (coefficient 1), so the hook does all of its work but the answers, and therefore their
  lengths, are identical; the difference is the hooks' cost.
Runs are interleaved and repeated; medians are reported.

Run: python benchmarks/bench_hooks_overhead.py   (about 3 minutes; ``--steering-only`` skips
the extraction timings)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from steerkit import load_concept, load_model, steer
from steerkit.activations import extract_activations
from steerkit.lm.generation import length_sorted_batches, right_padded


def bare_forward(lm, prompts, responses, batch_size):
    sequences = [lm.tokenizer(p, add_special_tokens=lm.adds_special_tokens)["input_ids"]
                 + lm.tokenizer(r, add_special_tokens=False)["input_ids"] for p, r in zip(prompts, responses)]
    with torch.inference_mode():
        for batch in length_sorted_batches([len(s) for s in sequences], batch_size):
            ids, mask = right_padded([sequences[i] for i in batch], lm.tokenizer.pad_token_id)
            lm.model.base_model(input_ids=ids, attention_mask=mask, use_cache=False)
    return sum(len(s) for s in sequences)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--n-prompts", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--steering-only", action="store_true", help="time only steered vs unsteered generation")
    parser.add_argument("--out", default="benchmarks/results/hooks_overhead.json")
    args = parser.parse_args(argv)
    lm = load_model(dtype=args.dtype)
    concept = load_concept("formal")
    questions = list(concept.extraction_questions) + list(concept.evaluation_questions)
    prompts = [lm.chat_prompt(q, p.pos, role="user") for q in questions for p in concept.instruction_pairs[:2]]
    responses = lm.generate(questions[:8], max_new_tokens=48) * (len(prompts) // 8)
    times = {"bare": [], "extract": [], "extract_shared": [], "unsteered": [], "steered": []}
    zero = np.zeros(lm.hidden_size, dtype=np.float32)
    gen_questions = questions[: args.n_prompts]
    for _ in range(args.repeats):
        if not args.steering_only:
            start = time.perf_counter(); n_tokens = bare_forward(lm, prompts, responses, 32); times["bare"].append(time.perf_counter() - start)
            start = time.perf_counter(); extract_activations(lm, prompts, responses, batch_size=32, share_prefixes=False); times["extract"].append(time.perf_counter() - start)
            start = time.perf_counter(); extract_activations(lm, prompts, responses, batch_size=32); times["extract_shared"].append(time.perf_counter() - start)
        start = time.perf_counter(); plain = lm.generate(gen_questions, max_new_tokens=args.max_new_tokens, batch_size=16)
        times["unsteered"].append(time.perf_counter() - start)
        with steer(lm, zero, 15, 1.0, positions="all"):
            start = time.perf_counter(); steered = lm.generate(gen_questions, max_new_tokens=args.max_new_tokens, batch_size=16)
            times["steered"].append(time.perf_counter() - start)
        assert steered == plain
    med = {k: float(np.median(v)) for k, v in times.items() if v}
    overhead = {"dtype": args.dtype, "median_s": med, "steering_overhead_pct": 100 * (med["steered"] / med["unsteered"] - 1)}
    result = overhead if args.steering_only else {
        "dtype": args.dtype, "n_sequences": len(prompts), "n_tokens": n_tokens, "median_s": med,
        "bare_tok_per_s": n_tokens / med["bare"], "extract_tok_per_s": n_tokens / med["extract"],
        "extract_vs_bare": med["bare"] / med["extract"],
        "extract_shared_tok_per_s": n_tokens / med["extract_shared"],
        "extract_shared_vs_bare": med["bare"] / med["extract_shared"],
        "steering_overhead_pct": 100 * (med["steered"] / med["unsteered"] - 1),
    }
    print(json.dumps(result, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
