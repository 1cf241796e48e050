"""GRACE diagnostics for several concepts in parallel with joblib.

Shows: ``joblib.Parallel`` over concepts; each worker process answers the contrastive design
of one concept, extracts a small ActivationSet and fits ``GraceRecommender`` on it, which
returns the geometry summary and the recommended construction, search space and budget.

The ``LanguageModel`` passed to the workers pickles *by reference*: a model loaded by name
travels as its load arguments and every worker process loads it once (from the local cache),
so no weights are copied between processes. The same holds for a ``SteeredModel`` or a search
sent to joblib workers (a Dask or Ray backend included).

Run:  python examples/parallel_concepts.py --concepts pirate formal culinary sycophantic --n-jobs 2
Takes about 1 minute for the four default concepts on an idle 2-core CPU with the embedded
model (4 extraction questions x 5 instruction pairs x pos/neg answers each, 2 workers).
"""

from __future__ import annotations

import argparse

import pandas as pd
from joblib import Parallel, delayed

from steerkit import build_activation_set, generate_contrastive, load_concept, load_model
from steerkit.diagnostics import GraceRecommender


def diagnose(lm, concept_name: str, n_questions: int, max_new_tokens: int) -> dict:
    """Runs in a worker: contrastive answers -> ActivationSet -> GRACE recommendation."""
    concept = load_concept(concept_name)
    samples = generate_contrastive(lm, concept, n_questions=n_questions, max_new_tokens=max_new_tokens,
                                   progress=False)
    acts = build_activation_set(lm, samples, concept=concept.name, progress=False)
    recommender = GraceRecommender().fit(acts)
    summary, rec = recommender.report_.summary, recommender.recommendation_
    return {
        "concept": concept.name,
        "contrasts": acts.n_contrasts,
        "best PL layer": summary["alignment_pl_best_layer"],
        "max A_PL": summary["alignment_pl_max"],
        "G": summary["granularity"],
        "PL/RA r": summary["pl_ra_correlation"],
        "mag CV": summary["magnitude_cv"],
        "blocks": summary["block_structure_share"],
        "eta2 question": summary["eta2_question"],
        "construction": rec.construction,
        "space": f"{rec.search_space} ({len(rec.layers)} layers)",
        "trials": rec.n_trials,
        "pilot": rec.pilot,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model alias, .gguf, folder or HF id (default: embedded SmolLM2)")
    parser.add_argument("--concepts", nargs="+", default=["pirate", "formal", "culinary", "sycophantic"])
    parser.add_argument("--n-jobs", type=int, default=2, help="worker processes (-1: one per core)")
    parser.add_argument("--n-questions", type=int, default=4, help="extraction questions per concept (at least 2)")
    parser.add_argument("--max-new-tokens", type=int, default=32, help="answer length in tokens")
    args = parser.parse_args(argv)

    lm = load_model(args.model)  # pickled by reference: each worker loads it once by name
    rows = Parallel(n_jobs=args.n_jobs)(
        delayed(diagnose)(lm, name, args.n_questions, args.max_new_tokens) for name in args.concepts
    )
    table = pd.DataFrame(rows).set_index("concept")
    with pd.option_context("display.width", 200, "display.max_columns", None, "display.float_format", "{:.2f}".format):
        print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
