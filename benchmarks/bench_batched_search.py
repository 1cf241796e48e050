"""Configurations judged per minute: batched (one per-row-steered generation per batch) vs one
at a time, on the embedded model.

A real ActivationSet (a few pirate questions), the run's judge (EmbeddingJudge +
LikelihoodCoherence, as in ``steerkit run``) and a grid of ``--n-configs`` configurations
(layers × coefficients, PV steerer) judged on ``--n-questions`` evaluation questions by
``GridSearchSteer(n_batch=...)`` for each batch size, side by side in one run: the batch sizes
take turns in every repeat, no cache is shared, medians of the repeats are reported. Each run
is split into its parts (seconds in ``lm.generate``, in the judge's ``score_responses``, the
rest: fitting, keys, tables), and its scores are compared with those of ``n_batch=1``.

Run: python benchmarks/bench_batched_search.py   (about 15 minutes on 2 CPU cores)
"""

from __future__ import annotations

import argparse
import functools
import json
import time

import numpy as np

from steerkit import load_concept, load_model
from steerkit._io import write_json
from steerkit.activations import build_activation_set, generate_contrastive
from steerkit.estimators import PVSteerer
from steerkit.metrics import EmbeddingJudge, LikelihoodCoherence
from steerkit.model_selection import GridSearchSteer
from steerkit.steering import SteeredModel


def timed(function, seconds: list[float]):
    """``function`` that adds the seconds each call takes to ``seconds[0]``."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            seconds[0] += time.perf_counter() - start
    return wrapper


def one_search(estimator, grid, judge, activations, questions, n_batch: int, parts: dict) -> tuple[float, dict]:
    """Seconds of one grid search with ``n_batch`` (its parts added to ``parts``) and its results."""
    for clock in parts.values():
        clock[0] = 0.0
    start = time.perf_counter()
    search = GridSearchSteer(estimator, grid, judge, n_batch=n_batch, refit=False, progress=False).fit(activations, questions)
    return time.perf_counter() - start, search.cv_results_


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n-configs", type=int, default=16, help="configurations: 4 layers × n/4 coefficients")
    parser.add_argument("--n-questions", type=int, default=8, help="evaluation questions judged per configuration")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--generation-batch", type=int, default=32, help="rows per generation batch (run default)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="model weights and compute")
    parser.add_argument("--out", default="benchmarks/results/batched_search.json")
    args = parser.parse_args(argv)

    lm = load_model(dtype=args.dtype)
    concept = load_concept("pirate")
    samples = generate_contrastive(lm, concept, n_questions=3, max_new_tokens=24, batch_size=30, progress=False)
    activations = build_activation_set(lm, samples, concept="pirate", progress=False)
    judge = EmbeddingJudge(LikelihoodCoherence(lm, batch_size=args.generation_batch)).fit_samples(activations.samples)
    estimator = SteeredModel(lm, PVSteerer(), max_new_tokens=args.max_new_tokens, batch_size=args.generation_batch)
    coefficients = list(np.linspace(1.0, 4.0, max(1, args.n_configs // 4)))
    grid = {"layer": [9, 13, 17, 21], "steerer__coefficient": [float(c) for c in coefficients]}
    questions = list(concept.evaluation_questions[: args.n_questions])
    n_configs = 4 * len(coefficients)

    parts = {"generate": [0.0], "judge": [0.0]}
    lm.generate = timed(lm.generate, parts["generate"])
    judge.score_responses = timed(judge.score_responses, parts["judge"])
    runs = {n: {"seconds": [], "generate_s": [], "judge_s": []} for n in args.batch_sizes}
    scores = {}
    for _ in range(args.repeats):
        for n_batch in args.batch_sizes:
            seconds, results = one_search(estimator, grid, judge, activations, questions, n_batch, parts)
            runs[n_batch]["seconds"].append(seconds)
            runs[n_batch]["generate_s"].append(parts["generate"][0])
            runs[n_batch]["judge_s"].append(parts["judge"][0])
            scores[n_batch] = np.asarray(results["mean_test_score"], dtype=float)
            print(f"n_batch={n_batch}: {seconds:.1f} s (generate {parts['generate'][0]:.1f} s, "
                  f"judge {parts['judge'][0]:.1f} s)", flush=True)

    reference = scores[min(args.batch_sizes)]
    table = {}
    for n_batch, times in runs.items():
        median = {k: float(np.median(v)) for k, v in times.items()}
        table[n_batch] = {
            **{f"median_{k}": v for k, v in median.items()},
            "median_other_s": median["seconds"] - median["generate_s"] - median["judge_s"],
            "configs_per_minute": 60.0 * n_configs / median["seconds"],
            "max_abs_score_difference": float(np.max(np.abs(scores[n_batch] - reference))),
            "runs_s": times["seconds"],
        }
    one = table[min(args.batch_sizes)]["configs_per_minute"]
    best = max(table, key=lambda n: table[n]["configs_per_minute"])
    result = {
        "model": lm.name, "dtype": args.dtype, "n_configs": n_configs, "n_questions": len(questions), "max_new_tokens": args.max_new_tokens,
        "generation_batch": args.generation_batch, "repeats": args.repeats, "by_n_batch": table,
        "best_n_batch": best, "speedup_at_best": table[best]["configs_per_minute"] / one,
    }
    print(json.dumps(result, indent=2))
    write_json(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
