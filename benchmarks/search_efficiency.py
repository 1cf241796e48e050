"""Search efficiency (GRACE's headline): guided vs unconstrained TPE vs grid, replayed on a
fully evaluated layer × coefficient grid.

Two phases, one command:

1. **Evaluate** every (layer, coefficient) of the full space (layers 1..L × GRACE's
   coefficients 0.5..4.5, the run's recommended construction) on the run's search questions
   with the offline judge. Judged answers go to ``<run>/<concept>/grid_cache.json`` after
   each layer, so an interrupted evaluation resumes and a second call is free.
2. **Replay** search strategies over many seeds with ``TPESearchSteer``/``GridSearchSteer``
   reading that cache: every trial is a cache hit, so a 50-trial search costs about a second.
   Per strategy and concept: mean T95 (GRACE: first trial whose best-so-far reaches 0.95 × the
   seed's own final best), mean best-found utility, and T-top5 (first trial that tries one of
   the landscape's top 5 % configurations: an absolute target that does not reward settling for
   a poor best, and does not saturate when the unsteered model already scores near the best).

Run:  python benchmarks/search_efficiency.py --runs steerkit-out --concepts formal pirate shakespearean
(``steerkit run <concept> --out <runs>`` first; evaluation ≈ 20 min per concept on 2 cores,
the replay a few minutes).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from steerkit import SteeredModel, load_concept, load_model
from steerkit.activations import ActivationSet
from steerkit.diagnostics import GraceRecommender, plot_best_so_far, plot_search_landscape
from steerkit.diagnostics.recommender import CONSTRUCTIONS
from steerkit.metrics import EmbeddingJudge, LikelihoodCoherence
from steerkit.model_selection import (GRACE_COEFFICIENTS, EvaluationCache, GridSearchSteer, TPESearchSteer,
                                      best_so_far, grace_grid, grace_space, trials_to_fraction)

MAX_NEW_TOKENS, BATCH_SIZE = 48, 32  # the settings of `steerkit run`, so its cache keys match


class OnConceptAndCoherent:
    """A second search objective over the same judged answers: each answer counts
    ``min(concept, coherence)`` (0–100), so it scores only when it is both on-concept and
    coherent, and the unsteered model gets no credit for coherence alone. Not GRACE's utility
    (``(concept + coherence) / 2``); used to see how strategies compare when the best
    configurations actually steer."""

    def __init__(self, judge):
        self.judge = judge

    def evaluate(self, steered_model, questions):
        return self.judge.evaluate(steered_model, questions)

    @staticmethod
    def aggregate(table: pd.DataFrame) -> float:
        values = np.fmin(pd.to_numeric(table["concept"], errors="coerce"),
                         pd.to_numeric(table["coherence"], errors="coerce")).dropna()
        return float(values.mean()) if len(values) else float("nan")


OBJECTIVES = {"utility": lambda judge: judge, "min(concept, coherence)": OnConceptAndCoherent}


class ConceptGrid:
    """One concept's run folder: activations, recommended construction, judge and cache."""

    def __init__(self, folder: Path, lm, n_questions: int, coefficients=GRACE_COEFFICIENTS):
        self.folder = folder
        self.activations = ActivationSet.load(folder / "activations.safetensors")
        summary = json.loads((folder / "summary.json").read_text())
        self.construction = summary["recommendation"]["construction"]
        self.estimator = SteeredModel(lm, CONSTRUCTIONS[self.construction](), max_new_tokens=MAX_NEW_TOKENS,
                                      batch_size=BATCH_SIZE)
        self.judge = EmbeddingJudge(LikelihoodCoherence(lm)).fit_samples(self.activations.samples)
        self.scoring = self.judge  # what the searches maximise (see OBJECTIVES)
        self.questions = list(load_concept(folder.name).evaluation_questions[:n_questions])
        self.cache_path = folder / "grid_cache.json"
        self.cache = EvaluationCache.load(self.cache_path)
        self.recommender = GraceRecommender().fit(self.activations)
        self.n_blocks = lm.n_blocks
        self.coefficients = tuple(coefficients)  # the searched coefficients (GRACE's by default)

    def evaluate(self) -> pd.DataFrame:
        """Judge every configuration of the full space; returns one row per configuration
        (layer, coefficient, utility = the current objective, concept, coherence, seconds)."""
        frames = []
        for layer in tqdm(range(1, self.n_blocks + 1), desc=f"grid {self.folder.name}", unit="layer", leave=False):
            space = {"layer": [layer], "steerer__coefficient": list(self.coefficients)}
            search = GridSearchSteer(self.estimator, space, self.scoring, cache=self.cache, refit=False,
                                     progress=False).fit(self.activations, self.questions)
            self.cache.save(self.cache_path)
            frames.append(pd.DataFrame({
                "layer": search.cv_results_["param_layer"],
                "coefficient": search.cv_results_["param_steerer__coefficient"],
                "utility": search.cv_results_["mean_test_score"],
                "concept": search.cv_results_["mean_concept"],
                "coherence": search.cv_results_["mean_coherence"],
                "seconds": search.cv_results_["seconds"],
                "cached": search.cv_results_["cached"],
            }))
        return pd.concat(frames, ignore_index=True)

    def unsteered(self) -> float:
        """Utility of the unsteered model on the search questions (coefficient 0: the hook adds
        nothing, so the answers are the unsteered ones)."""
        search = GridSearchSteer(self.estimator, {"layer": [1], "steerer__coefficient": [0.0]}, self.scoring,
                                 cache=self.cache, refit=False, progress=False).fit(self.activations, self.questions)
        self.cache.save(self.cache_path)
        return float(search.best_score_)


    def tpe(self, seed: int, n_trials: int, layers=None, **options) -> np.ndarray:
        """Trial utilities of one TPE search (every evaluation read from the cache)."""
        search = TPESearchSteer(self.estimator, grace_space(self.n_blocks, coefficients=self.coefficients),
                                self.scoring, n_trials=n_trials,
                                random_state=seed, layers=layers, cache=self.cache, refit=False, progress=False,
                                **options)
        search.fit(self.activations, self.questions)
        assert search.history_["cached"].all(), "replay needs a fully evaluated grid"
        return search.history_["score"].to_numpy()

    def grid(self, seed: int) -> np.ndarray:
        """Trial utilities of GRACE's grid (every 5th layer × {1, 2, 3}) in a seeded random order."""
        search = GridSearchSteer(self.estimator, grace_grid(self.n_blocks), self.scoring, cache=self.cache,
                                 refit=False, progress=False).fit(self.activations, self.questions)
        scores = np.asarray(search.cv_results_["mean_test_score"], dtype=float)
        return np.random.default_rng(seed).permutation(scores)


def summarise(histories: list[np.ndarray], landscape: pd.DataFrame, n_trials: int) -> dict:
    """Per strategy, over seeds: GRACE's T95 (relative to each seed's own best), T-top5 (first
    trial that tries one of the landscape's top 5 % configurations: an absolute, scale-free
    target that does not reward settling for a poor best; ``n_trials + 1`` when never reached)
    and the best utility found."""
    target = float(np.quantile(landscape.utility, 0.95))
    t95 = [trials_to_fraction(h, 0.95) for h in histories]
    reached = [np.nanmax(h) >= target for h in histories]
    top5 = [int(np.argmax(best_so_far(h) >= target)) + 1 if ok else n_trials + 1
            for h, ok in zip(histories, reached)]
    best = [float(np.nanmax(h)) for h in histories]
    return {"t95_mean": float(np.mean(t95)), "t95_sd": float(np.std(t95)), "t95": t95,
            "top5_target": target, "t_top5_mean": float(np.mean(top5)), "t_top5_sd": float(np.std(top5)),
            "t_top5": top5, "reached_share": float(np.mean(reached)),
            "best_mean": float(np.mean(best)), "best_min": float(np.min(best))}


def replay(grid: ConceptGrid, landscape: pd.DataFrame, unsteered: float, seeds: int, n_trials: int,
           figure: Path) -> dict:
    """All strategies over ``seeds`` seeds; returns their summaries and draws best-so-far curves."""
    ranking = grid.recommender.report_.top_alignment_layers(grid.n_blocks, "pl")
    middle = float(np.median(GRACE_COEFFICIENTS))  # 2.5, also when lower coefficients are searched
    warm_start = [{"layer": int(layer), "steerer__coefficient": middle} for layer in ranking[:5]]
    strategies = {
        "random (full space)": lambda seed: grid.tpe(seed, n_trials, n_startup_trials=n_trials),
        "unconstrained TPE": lambda seed: grid.tpe(seed, n_trials),
        f"guided TPE ({grid.recommender.recommendation_.search_space})":
            lambda seed: grid.tpe(seed, n_trials, layers=grid.recommender.layers_),
        "guided TPE (top-8 PL)": lambda seed: grid.tpe(seed, n_trials, layers=ranking[:8]),
        "guided TPE + warm start (top-5 PL x middle coefficient)":
            lambda seed: grid.tpe(seed, n_trials, layers=grid.recommender.layers_, initial_params=warm_start),
        "guided TPE, 5 startup trials":
            lambda seed: grid.tpe(seed, n_trials, layers=grid.recommender.layers_, n_startup_trials=5),
        "grid (every 5th layer x {1,2,3})": grid.grid,
    }
    histories = {name: [run(seed) for seed in tqdm(range(seeds), desc=name, leave=False)]
                 for name, run in strategies.items()}
    summaries = {name: summarise(h, landscape, n_trials) for name, h in histories.items()}
    fig = plot_best_so_far(histories, band="sd")
    ax = fig.axes[0]
    ax.axhline(unsteered, color="gray", linestyle="--", linewidth=1, label="unsteered")
    ax.axhline(next(iter(summaries.values()))["top5_target"], color="black", linestyle=":", linewidth=1,
               label="top 5 % of the grid")
    ax.set_title(f"{grid.folder.name}: mean best-so-far utility over {seeds} seeds (±1 sd)")
    ax.legend(loc="lower right", fontsize="x-small")
    fig.savefig(figure, dpi=120, bbox_inches="tight")
    return summaries


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default="steerkit-out", help="output folder of `steerkit run`")
    parser.add_argument("--concepts", nargs="+", default=["formal", "pirate", "shakespearean"])
    parser.add_argument("--n-questions", type=int, default=8, help="search questions (the run's default)")
    parser.add_argument("--evaluate-only", action="store_true", help="fill the grid caches and stop")
    parser.add_argument("--seeds", type=int, default=20, help="seeds per strategy (the paper: 3)")
    parser.add_argument("--n-trials", type=int, default=50, help="trials per TPE search (the paper: 50)")
    parser.add_argument("--coefficients", type=float, nargs="+", default=list(GRACE_COEFFICIENTS),
                        help="searched coefficients (default GRACE's 0.5..4.5)")
    parser.add_argument("--tag", default="", help="suffix of the figure names, e.g. _low")
    parser.add_argument("--out", default="benchmarks/results/search_efficiency.json")
    args = parser.parse_args(argv)
    lm = load_model()
    results = {}
    for concept in args.concepts:
        grid = ConceptGrid(Path(args.runs) / concept, lm, args.n_questions, args.coefficients)
        start = time.perf_counter()
        landscape = grid.evaluate()  # judged once; every objective reads these answers
        fresh = landscape[~landscape.cached]
        print(f"{concept}: {len(landscape)} configurations, {len(fresh)} newly judged in "
              f"{time.perf_counter() - start:.0f} s ({fresh.seconds.median() if len(fresh) else float('nan'):.2f} s median)")
        landscape.to_csv(grid.folder / f"grid_landscape{args.tag}.csv", index=False)
        if args.evaluate_only:
            continue
        figures = Path(args.out).parent
        for objective, make_scoring in OBJECTIVES.items():
            grid.scoring = make_scoring(grid.judge)
            slug = "utility" if objective == "utility" else "min"
            landscape = grid.evaluate()  # all cached: rescored under this objective
            plot_search_landscape({"param_layer": landscape.layer, "param_steerer__coefficient": landscape.coefficient,
                                   "mean_test_score": landscape.utility}, path=figures / f"full_grid{args.tag}_{concept}_{slug}.png")
            unsteered = grid.unsteered()
            strategies = replay(grid, landscape, unsteered, args.seeds, args.n_trials,
                                figures / f"search_efficiency{args.tag}_{concept}_{slug}.png")
            results.setdefault(objective, {})[concept] = {
                "construction": grid.construction, "recommended_layers": grid.recommender.layers_.tolist(),
                "unsteered": unsteered,
                "optimum": landscape.loc[landscape.utility.idxmax(), ["layer", "coefficient", "utility"]].tolist(),
                "grid_min": float(landscape.utility.min()), "strategies": strategies}
            print(f"{concept}, objective {objective}: unsteered {unsteered:.2f}, optimum "
                  f"{landscape.utility.max():.2f}")
            for name, row in strategies.items():
                print(f"  {name:58s} T95 {row['t95_mean']:5.1f} ± {row['t95_sd']:4.1f}   T-top5 "
                      f"{row['t_top5_mean']:5.1f} ± {row['t_top5_sd']:4.1f} (reached {row['reached_share']:.0%})"
                      f"   best {row['best_mean']:.2f}")
    if not args.evaluate_only:
        Path(args.out).write_text(json.dumps(results, indent=2))
        print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
