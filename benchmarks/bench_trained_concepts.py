"""Held-out utility of trained steering (BiPO, RePS) against PV and prompting on bundled concepts (issue 12).

For each concept (formal, pirate, shakespearean by default), on the embedded model in float32:

1. ``steerkit run`` with its default settings (``run_concept``; reused when OUT/<concept> holds a
   finished run): contrastive answers, judge, search, and its held-out questions.
2. Contenders, all judged by that run's judge (:func:`steerkit.workflow.run_judge`) on its
   held-out questions (:func:`steerkit.workflow.held_out_questions`) with its answer length:
   - ``unsteered`` and ``prompting`` (the concept's first instruction pair, as in the run);
   - ``pv``: the run's PV vector at the run's best layer and coefficient and positions;
   - ``run_best``: the run's best vector (the construction its search chose);
   - ``bipo`` and ``reps``: one vector each at the run's best layer, trained on the preference
     triples of the run's cached contrastive answers
     (:func:`~steerkit.training.preference_data_from_concept`), ``--epochs`` passes.
3. The mean utility (0-100) over the held-out questions with a percentile bootstrap 95 %
   interval (questions resampled, ``--n-bootstrap`` draws, seeded), plus mean concept and
   coherence scores and training time.

Writes benchmarks/results/trained_concepts.json.

Cost on 2 CPU cores (about 100 training tokens/s): a run takes about 3 minutes per concept;
BiPO reads about 12k tokens per epoch on a concept's 60 triples (about 2 minutes) and RePS twice
that. With the default 3 epochs (the methods' own defaults are 10 and 20 in the paper):
about 25 minutes per concept, 75 minutes for the three.

Run (lead, quiet machine): python benchmarks/bench_trained_concepts.py          (about 75 minutes)
Check that it works:       python benchmarks/bench_trained_concepts.py --concepts pirate --n-questions 2 \\
                               --budget 2 --n-held-out 2 --max-new-tokens 8 --epochs 1 --out-dir /tmp/tc \\
                               --out /tmp/tc.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from steerkit import load_concept, load_model
from steerkit._io import write_json
from steerkit.estimators.files import load_vector
from steerkit.metrics import bootstrap_ci
from steerkit.run_settings import RunSettings
from steerkit.steering import PromptSteerer, steer
from steerkit.training import BiPOSteerer, RePSSteerer, preference_data_from_concept
from steerkit.workflow import (contrastive_answers, held_out_comparison, held_out_questions, judged_activations,
                               run_concept, run_judge)

RESULTS = Path(__file__).resolve().parent / "results"


class SavedVector:
    """A vector of a run at one layer, coefficient and position policy, answering like ``steerkit generate``."""

    def __init__(self, lm, vector: np.ndarray, layer: int, coefficient: float, positions: str, generation: dict):
        self.lm, self.vector, self.layer, self.coefficient = lm, vector, layer, coefficient
        self.positions, self.generation = positions, generation

    def generate(self, questions) -> list[str]:
        with steer(self.lm, self.vector, self.layer, self.coefficient, positions=self.positions):
            return self.lm.generate(list(questions), **self.generation)


class Trained:
    """A trained steerer answering with the run's answer length and batch size."""

    def __init__(self, steerer, generation: dict):
        self.steerer, self.generation = steerer, generation

    def generate(self, questions) -> list[str]:
        return self.steerer.generate(list(questions), **self.generation)


def evaluate_concept(lm, name: str, settings: RunSettings, args) -> dict:
    concept = load_concept(name)
    started = time.perf_counter()
    summary = run_concept(lm, concept, args.out_dir, settings)
    run_seconds = time.perf_counter() - started
    folder = args.out_dir / concept.name
    samples, _ = contrastive_answers(lm, concept, folder, settings)
    activations, _ = judged_activations(lm, samples, concept, folder, settings, True)
    judge = run_judge(lm, activations, settings)
    questions = held_out_questions(concept, settings)
    layer, coefficient = summary.best["layer"], summary.best["coefficient"]
    generation = {"max_new_tokens": settings.max_new_tokens, "batch_size": settings.batch_size}
    pv, _ = load_vector(folder / "vectors" / "pv")
    best, best_sidecar = load_vector(folder / "vectors" / "best")
    positions = best_sidecar.get("positions") or "response"
    data = preference_data_from_concept(concept, generations=folder, contrast_ids=activations.contrast_ids)
    trained, fit_seconds = {}, {}
    for method, cls in (("bipo", BiPOSteerer), ("reps", RePSSteerer)):
        steerer = cls(lm, layer=layer, epochs=args.epochs, seed=args.seed).fit(data)
        trained[method], fit_seconds[method] = steerer, steerer.fit_seconds_
        print(f"{concept.name}: {method} trained on {len(data)} triples in {steerer.fit_seconds_:.0f} s", file=sys.stderr)
    contenders = {
        "unsteered": PromptSteerer(lm, **generation),
        "prompting": PromptSteerer.from_concept(lm, concept, role=settings.instruction_role, **generation),
        "pv": SavedVector(lm, pv[layer], layer, coefficient, positions, generation),
        "run_best": SavedVector(lm, best, layer, coefficient, positions, generation),
        **{method: Trained(steerer, generation) for method, steerer in trained.items()},
    }
    tables = {name: judge.evaluate(model, questions) for name, model in contenders.items()}
    comparison = held_out_comparison(judge, tables)
    rows = {name: {**comparison.loc[name].to_dict(),
                   "utility_ci95": list(bootstrap_ci(pd.to_numeric(tables[name]["utility"], errors="coerce"),
                                                     n_resamples=args.n_bootstrap, seed=args.seed)[1:3]),
                   "fit_seconds": fit_seconds.get(name)}
            for name in contenders}
    for name, row in rows.items():
        print(f"{concept.name:>14} {name:>9}: utility {row['utility']:5.1f} [{row['utility_ci95'][0]:5.1f}, "
              f"{row['utility_ci95'][1]:5.1f}] (concept {row['concept']:5.1f}, coherence {row['coherence']:5.1f})",
              file=sys.stderr)
    return {"layer": layer, "coefficient": coefficient, "positions": positions,
            "run_best_construction": summary.best["construction"], "n_triples": len(data),
            "n_held_out": len(questions), "run_seconds": run_seconds, "contenders": rows,
            "answers": [{"question": q, **{name: t["response"].iloc[i] for name, t in tables.items()}}
                        for i, q in enumerate(questions)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = RunSettings()
    parser.add_argument("--concepts", nargs="+", default=["formal", "pirate", "shakespearean"])
    parser.add_argument("--epochs", type=int, default=3, help="BiPO and RePS training epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-bootstrap", type=int, default=10_000)
    parser.add_argument("--n-questions", type=int, default=defaults.n_questions)
    parser.add_argument("--budget", type=int, default=defaults.budget)
    parser.add_argument("--n-held-out", type=int, default=defaults.n_held_out)
    parser.add_argument("--max-new-tokens", type=int, default=defaults.max_new_tokens)
    parser.add_argument("--out-dir", type=Path, default=Path("steerkit-out"), help="steerkit run folders")
    parser.add_argument("--out", type=Path, default=RESULTS / "trained_concepts.json")
    args = parser.parse_args()
    settings = RunSettings(n_questions=args.n_questions, budget=args.budget, n_held_out=args.n_held_out,
                           max_new_tokens=args.max_new_tokens, seed=args.seed)
    lm = load_model(dtype="float32")
    started = time.perf_counter()
    results = {}
    for name in args.concepts:
        results[name] = evaluate_concept(lm, name, settings, args)
        print(f"[{(time.perf_counter() - started) / 60:.1f} min so far]", file=sys.stderr)
    write_json(args.out, {"model": lm.name, "dtype": "float32", "settings": vars(settings), "epochs": args.epochs,
                          "n_bootstrap": args.n_bootstrap, "wall_seconds": time.perf_counter() - started,
                          "concepts": results})
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
