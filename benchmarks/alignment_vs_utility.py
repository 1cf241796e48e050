"""Does alignment predict good layers? Per-layer alignment vs per-layer best utility.

For each concept (activations from ``steerkit run``), a grid search over layers × coefficients
is judged with the offline embedding judge; per layer, the best utility (and the best concept
score) over coefficients is correlated (Pearson and Spearman) with that layer's alignment 𝒜^PL
and 𝒜^RA. Judged answers are cached in ``<run>/<concept>/grid_cache.json``, so a re-run only
recomputes the statistics.

Run:  python benchmarks/alignment_vs_utility.py --runs steerkit-out --concepts pirate formal
(about 4 minutes per concept on 2 CPU cores with the default grid).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from steerkit import SteeredModel, load_concept, load_model
from steerkit.activations import ActivationSet
from steerkit.diagnostics import geometry_report, plot_search_landscape
from steerkit.diagnostics.recommender import CONSTRUCTIONS
from steerkit.metrics import EmbeddingJudge, LikelihoodCoherence
from steerkit.model_selection import EvaluationCache, GridSearchSteer


def per_layer(concept: str, runs: Path, lm, layers, coefficients, n_questions: int) -> pd.DataFrame:
    folder = runs / concept
    activations = ActivationSet.load(folder / "activations.safetensors")
    construction = json.loads((folder / "summary.json").read_text())["recommendation"]["construction"]
    judge = EmbeddingJudge(LikelihoodCoherence(lm)).fit_samples(activations.samples)
    cache = EvaluationCache.load(folder / "grid_cache.json")
    grid = {"layer": list(layers), "steerer__coefficient": list(coefficients)}
    estimator = SteeredModel(lm, CONSTRUCTIONS[construction](), max_new_tokens=48, batch_size=32)
    questions = list(load_concept(concept).evaluation_questions[:n_questions])
    search = GridSearchSteer(estimator, grid, judge, cache=cache).fit(activations, questions)
    cache.save(folder / "grid_cache.json")
    plot_search_landscape(search.cv_results_, path=folder / "grid_landscape.png")
    results = pd.DataFrame(search.cv_results_)
    by_layer = results.groupby("param_layer")
    best, best_concept = by_layer["mean_test_score"].max(), by_layer["mean_concept"].max()
    report = geometry_report(activations).layers.set_index("layer")
    return pd.DataFrame({"best_utility": best, "best_concept": best_concept,
                         "alignment_pl": report.loc[best.index, "alignment_pl"],
                         "alignment_ra": report.loc[best.index, "alignment_ra"]})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default="steerkit-out", help="output folder of `steerkit run`")
    parser.add_argument("--concepts", nargs="+", default=["pirate", "formal"])
    parser.add_argument("--layers", type=int, nargs="+", default=list(range(2, 31, 2)))
    parser.add_argument("--coefficients", type=float, nargs="+", default=[1.0, 2.0, 3.0])
    parser.add_argument("--n-questions", type=int, default=8)
    parser.add_argument("--out", default="benchmarks/results/alignment_vs_utility.json")
    args = parser.parse_args(argv)
    lm = load_model()
    rows = {}
    for concept in args.concepts:
        table = per_layer(concept, Path(args.runs), lm, args.layers, args.coefficients, args.n_questions)
        entry = {"layers": table.index.tolist(), **{c: table[c].round(4).tolist() for c in table.columns}}
        for column in ("alignment_pl", "alignment_ra"):
            entry[f"pearson_{column}"] = float(stats.pearsonr(table[column], table["best_utility"])[0])
            entry[f"spearman_{column}"] = float(stats.spearmanr(table[column], table["best_utility"])[0])
            entry[f"pearson_{column}_vs_best_concept"] = float(stats.pearsonr(table[column], table["best_concept"])[0])
        rows[concept] = entry
        print(f"{concept}: r(A_PL, best utility) = {entry['pearson_alignment_pl']:.2f} "
              f"(Spearman {entry['spearman_alignment_pl']:.2f}); r(A_RA, best utility) = "
              f"{entry['pearson_alignment_ra']:.2f} (Spearman {entry['spearman_alignment_ra']:.2f})")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2))
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
