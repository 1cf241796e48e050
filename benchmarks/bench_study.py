"""Seed 001's small-model study on the embedded model: sweeps, zones, KL gap, diversity.

For each concept: ``steerkit sweep`` (the run's cached answers and activations, PV vector,
layers every ``--every``-th x ``--coefficients``, judged by the offline embedding judge), then
the zones as fractions of depth, the KL gap between the best (sweet-spot or most steerable)
layer and the last swept layer in orders of magnitude, and sampling diversity steered vs
unsteered at T = 0.3 and 1.0 at the best cell. Prints one JSON record per concept and writes
them to ``OUT/study.json``.

Measurement (about 1-2 hours on 2 CPU cores; the seed's settings, three concepts):
    python benchmarks/bench_study.py --concepts pirate formal shakespearean --every 3 \
        --coefficients 1 2 4 8 16 32 --n-eval-questions 20 --out benchmarks/results/study
Smoke check (tiny settings, minutes):
    python benchmarks/bench_study.py --concepts pirate --layers 6 18 --coefficients 4 \
        --n-questions 2 --n-eval-questions 2 --max-new-tokens 8 --n-samples 2 --out /tmp/study
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from steerkit._io import write_json
from steerkit.activations import ActivationSet
from steerkit.cli import main as steerkit_main
from steerkit.concepts import load_concept
from steerkit.lm import load_model
from steerkit.lm.interventions import AddVector
from steerkit.metrics import bootstrap_ci, paired_difference, sampling_diversity


def _best_cell(table: pd.DataFrame, zones: pd.DataFrame) -> pd.Series:
    """The highest change rate among coherent cells (coherence >= 50), else the highest change rate."""
    coherent = table[table["coherence"] >= 50]
    return (coherent if len(coherent) else table).sort_values(["change_rate", "coherence"]).iloc[-1]


def study(lm, concept: str, out: Path, args) -> dict:
    sweep_args = ["sweep", concept, "--out", str(out), "--judge", "embedding", "--coefficients",
                  *map(str, args.coefficients), "--n-questions", str(args.n_questions), "--max-new-tokens",
                  str(args.max_new_tokens), "--n-eval-questions", str(args.n_eval_questions)]
    sweep_args += ["--layers", *map(str, args.layers)] if args.layers else ["--every", str(args.every)]
    if steerkit_main(sweep_args) != 0:
        raise SystemExit(f"steerkit sweep {concept} failed")
    folder = out / concept / "sweep"
    table = pd.read_csv(folder / "sweep.csv")
    zones = pd.DataFrame(json.loads((folder / "sweep.json").read_text())["zones"]).set_index("layer")
    best = _best_cell(table, zones)
    last = table[table["layer"] == table["layer"].max()]["kl_bits"].max()
    best_kl = table[table["layer"] == best["layer"]]["kl_bits"].max()
    activations = ActivationSet.load(out / concept / "activations.safetensors")  # the PV vector the sweep used
    direction = activations.differences("response_avg", int(best["layer"])).mean(0)
    steering = [AddVector(direction, site=int(best["layer"]), coefficient=float(best["coefficient"]))]
    questions = list(load_concept(concept).evaluation_questions)[: args.n_eval_questions]
    diversity = {}
    for temperature in (0.3, 1.0):
        plain = sampling_diversity(lm, questions, n_samples=args.n_samples, temperature=temperature,
                                   max_new_tokens=args.max_new_tokens)
        steered = sampling_diversity(lm, questions, n_samples=args.n_samples, temperature=temperature,
                                     max_new_tokens=args.max_new_tokens, interventions=steering)
        difference = paired_difference(steered, plain, label=f"{concept} diversity at T={temperature}")
        diversity[str(temperature)] = {"unsteered": bootstrap_ci(plain)._asdict(), "steered": bootstrap_ci(steered)._asdict(),
                                       "difference": difference._asdict()}
    depth = lambda layers: [round(layer / lm.n_blocks, 2) for layer in layers]  # noqa: E731
    return {
        "concept": concept, "model": lm.name, "n_blocks": lm.n_blocks,
        "zones_by_depth": {zone: depth(zones.index[zones["zone"] == zone]) for zone in zones["zone"].unique()},
        "collapse_alpha": zones["collapse_alpha"].to_dict(),
        "best_cell": {k: (v.item() if hasattr(v, "item") else v) for k, v in best.items()},
        "kl_gap_orders_of_magnitude": math.log10(max(best_kl, 1e-12) / max(last, 1e-12)),
        "diversity": diversity,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concepts", nargs="+", default=["pirate", "formal", "shakespearean"])
    parser.add_argument("--layers", type=int, nargs="+", default=None)
    parser.add_argument("--every", type=int, default=3)
    parser.add_argument("--coefficients", type=float, nargs="+", default=[1, 2, 4, 8, 16, 32])
    parser.add_argument("--n-questions", type=int, default=8, help="extraction questions")
    parser.add_argument("--n-eval-questions", type=int, default=20)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--n-samples", type=int, default=10, help="samples per question for diversity")
    parser.add_argument("--out", default="benchmarks/results/study")
    args = parser.parse_args()
    out = Path(args.out)
    lm = load_model()
    records = [study(lm, concept, out, args) for concept in args.concepts]
    for record in records:
        print(json.dumps(record, default=float))
    write_json(out / "study.json", records)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
