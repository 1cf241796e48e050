"""Diagnostics scaling: time of the full GRACE diagnostic suite vs number of contrasts.

Synthetic contrasts (5 instruction pairs × n/5 questions) at d = 576 and 31 layers (the
embedded model's shape); `geometry_report` computes alignment (PL, RA), γ, granularity,
magnitude CV, PL/RA r, pair cosines, block structure and the ANOVA. Median of repeats.

Run: python benchmarks/bench_diagnostics_scaling.py   (about 15 s)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from steerkit.activations import ActivationSet
from steerkit.diagnostics import geometry_report


def synthetic(n_contrasts: int, n_layers: int, d: int, seed: int = 0) -> ActivationSet:
    rng = np.random.default_rng(seed)
    n_pairs = 5
    questions = np.repeat(np.arange(n_contrasts // n_pairs), n_pairs)
    pairs = np.tile(np.arange(n_pairs), n_contrasts // n_pairs)
    n = questions.size
    base = rng.standard_normal((n, n_layers, d), dtype=np.float32)
    shift = rng.standard_normal((n_layers, d), dtype=np.float32)
    acts = {pos: np.concatenate([base + shift + 0.5 * rng.standard_normal((n, n_layers, d), dtype=np.float32), base])
            for pos in ("prompt_last", "response_avg")}
    ids = np.arange(n)
    return ActivationSet(acts, np.r_[np.ones(n), np.zeros(n)], np.tile(questions, 2), np.tile(pairs, 2), np.tile(ids, 2))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 300, 1000, 3000, 10000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/diagnostics_scaling.json")
    args = parser.parse_args(argv)
    rows = []
    for n in args.sizes:
        aset = synthetic(n, 31, 576)
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            geometry_report(aset)
            times.append(time.perf_counter() - start)
        rows.append({"n_contrasts": n, "median_s": float(np.median(times)), "per_contrast_ms": 1000 * float(np.median(times)) / n})
        print(f"{n:>6} contrasts: {rows[-1]['median_s']:.3f} s ({rows[-1]['per_contrast_ms']:.3f} ms per contrast)")
    sizes, seconds = np.log([r["n_contrasts"] for r in rows]), np.log([r["median_s"] for r in rows])
    slope = float(np.polyfit(sizes[1:], seconds[1:], 1)[0])
    print(f"log-log slope (n >= {args.sizes[1]}): {slope:.2f}  (1 = linear)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"rows": rows, "loglog_slope": slope, "n_layers": 31, "d": 576}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
