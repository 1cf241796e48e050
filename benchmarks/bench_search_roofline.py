"""How fast can a search judge configurations on this CPU at best? A roofline bound for
issue 11's batched-search target.

Counts the floating-point operations of judging ONE configuration exactly as
``benchmarks/bench_batched_search.py`` does (steered generation of the evaluation answers +
the run's judge), with ``torch.utils.flop_counter.FlopCounterMode`` around a real one-
configuration search, and measures the CPU's best matrix-multiply throughput (GFLOP/s) on the
shapes a batched decode step uses and on large square matrices. Batching cannot remove
arithmetic, so ``FLOPs / best throughput`` is a lower bound on seconds per configuration and

    most configurations per minute = 60 / (FLOPs per configuration / best GFLOP/s)

bounds what any batch size can reach; dividing by the one-at-a-time rate measured in the same
run gives the largest speed-up batching could give here. Attention and element-wise work are
left out of the matmul peak, so the bound is generous (real runs are slower).

Run: python benchmarks/bench_search_roofline.py   (about 2 minutes on 2 CPU cores)
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from steerkit import load_concept, load_model
from steerkit._io import write_json
from steerkit.activations import build_activation_set, generate_contrastive
from steerkit.estimators import PVSteerer
from steerkit.metrics import EmbeddingJudge, LikelihoodCoherence
from steerkit.model_selection import GridSearchSteer
from steerkit.steering import SteeredModel

# (rows, inner, outer): a decode step of 64 rows through SmolLM2's MLP and its vocabulary
# projection, and a large square product (the best case for any BLAS).
MATMUL_SHAPES = [(64, 576, 1536), (64, 576, 49152), (512, 576, 1536), (2048, 2048, 2048)]


def matmul_gflops(rows: int, inner: int, outer: int, dtype: torch.dtype, repeats: int) -> float:
    """Median GFLOP/s of ``(rows, inner) @ (inner, outer)`` in ``dtype`` (2 FLOPs per multiply-add)."""
    a, b = torch.randn(rows, inner, dtype=dtype), torch.randn(inner, outer, dtype=dtype)
    a @ b  # warm-up
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        seconds.append(time.perf_counter() - start)
    return 2 * rows * inner * outer / float(np.median(seconds)) / 1e9


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-questions", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=20, help="timings per matmul shape")
    parser.add_argument("--out", default="benchmarks/results/search_roofline.json")
    args = parser.parse_args(argv)

    peaks = {}
    for dtype in (torch.float32, torch.bfloat16):
        peaks[str(dtype).removeprefix("torch.")] = {
            "x".join(map(str, shape)): matmul_gflops(*shape, dtype, args.repeats) for shape in MATMUL_SHAPES}
    print(json.dumps(peaks, indent=2), flush=True)

    lm = load_model(dtype="float32")
    concept = load_concept("pirate")
    samples = generate_contrastive(lm, concept, n_questions=3, max_new_tokens=24, batch_size=30, progress=False)
    activations = build_activation_set(lm, samples, concept="pirate", progress=False)
    judge = EmbeddingJudge(LikelihoodCoherence(lm, batch_size=32)).fit_samples(activations.samples)
    estimator = SteeredModel(lm, PVSteerer(), max_new_tokens=args.max_new_tokens, batch_size=32)
    questions = list(concept.evaluation_questions[: args.n_questions])
    grid = {"layer": [13], "steerer__coefficient": [2.0]}

    counter = FlopCounterMode(display=False)
    with counter:
        GridSearchSteer(estimator, grid, judge, n_batch=1, refit=False, progress=False).fit(activations, questions)
    flops = counter.get_total_flops()
    start = time.perf_counter()
    GridSearchSteer(estimator, grid, judge, n_batch=1, refit=False, progress=False).fit(activations, questions)
    one_at_a_time_s = time.perf_counter() - start

    best = max(peaks["float32"].values())
    bound_s = flops / (best * 1e9)
    result = {
        "model": lm.name, "n_questions": len(questions), "max_new_tokens": args.max_new_tokens,
        "gflop_per_configuration": flops / 1e9, "matmul_gflops": peaks,
        "float32_best_gflops": best, "lower_bound_s_per_configuration": bound_s,
        "one_at_a_time_s_per_configuration": one_at_a_time_s,
        "max_configs_per_minute": 60.0 / bound_s, "one_at_a_time_configs_per_minute": 60.0 / one_at_a_time_s,
        "largest_possible_speedup": one_at_a_time_s / bound_s,
    }
    print(json.dumps(result, indent=2))
    write_json(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
