"""``steerkit search``: grid or TPE search over layer x coefficient, then a held-out comparison."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from . import _inputs
from ._inputs import _make_steerer, _recorded_concept
from ._options import (
    CONSTRUCTIONS,
    ROLE_HELP,
    _add_model_options,
    _count,
    _finite_float,
    _positive_int,
    _run_defaults,
)


def _make_judge(kind: str, lm, activations, concept):
    from steerkit.metrics import EmbeddingJudge, LikelihoodCoherence, LLMJudge

    if kind == "embedding":
        if activations.samples is None:
            raise ValueError("the embedding judge trains on the extraction answers, but this activation file has none")
        return EmbeddingJudge(LikelihoodCoherence(lm)).fit_samples(activations.samples)
    return LLMJudge.for_concept(concept, model=lm)


def _cmd_search(args) -> int:
    import numpy as np
    import pandas as pd

    from steerkit._io import write_json, write_text
    from steerkit.activations import ActivationSet
    from steerkit.model_selection import GridSearchSteer, TPESearchSteer, grace_grid, grace_space
    from steerkit.steering import PromptSteerer, SteeredModel

    activations = ActivationSet.load(args.activations)
    concept = _recorded_concept(args.concept, activations.concept, activations.info.get("concept_source"),
                                args.activations)
    lm = _inputs._load_model(args, args.model or activations.model_name)
    judge = _make_judge(args.judge, lm, activations, concept)
    questions = list(concept.evaluation_questions)
    n_search = args.n_questions or len(questions) // 2
    search_questions, held_out = questions[:n_search], questions[n_search:n_search + args.n_held_out]
    if not held_out:
        raise ValueError("no held-out evaluation questions left: lower --n-questions")
    estimator = SteeredModel(lm, _make_steerer(args.construction), max_new_tokens=args.max_new_tokens,
                             batch_size=args.batch_size)
    coefficients = args.coefficients
    if args.method == "grid":
        grid = grace_grid(lm.n_blocks, coefficients=coefficients or (1.0, 2.0, 3.0))
        search = GridSearchSteer(estimator, grid, judge, layers=args.layers, cv=args.cv or None)
    else:
        space = grace_space(lm.n_blocks, coefficients=coefficients) if coefficients else grace_space(lm.n_blocks)
        search = TPESearchSteer(estimator, space, judge, n_trials=args.n_trials, random_state=args.seed,
                                layers=args.layers, cv=args.cv or None, storage=args.storage,
                                study_name=args.study_name)
    start = time.perf_counter()
    search.fit(activations, search_questions)
    elapsed = time.perf_counter() - start
    out = Path(args.out)
    trials = search.history_
    write_text(out / "trials.csv", trials.to_csv(index=False))
    held = {
        "steered": judge(search.best_estimator_, held_out),
        "unsteered": judge(PromptSteerer(lm, max_new_tokens=args.max_new_tokens), held_out),
        "prompting": judge(PromptSteerer.from_concept(lm, concept, role=args.instruction_role,
                                                      max_new_tokens=args.max_new_tokens), held_out),
    }
    best = {
        "concept": concept.name, "model": lm.name, "method": args.method, "seed": args.seed,
        "construction": args.construction, "judge": args.judge,
        "best_params": {k: (v if isinstance(v, (int, float, str)) else repr(v)) for k, v in search.best_params_.items()},
        "best_search_utility": search.best_score_, "n_trials": int(len(trials)),
        "trials_to_95": search.trials_to(0.95), "search_seconds": round(elapsed, 1),
        "search_questions": len(search_questions), "held_out_questions": len(held_out),
        "held_out_utility": {k: float(v) for k, v in held.items()},
    }
    write_json(out / "best.json", best)
    print(pd.Series({k: v for k, v in best.items() if k != "held_out_utility"}).to_string(), file=sys.stderr)
    for name, value in held.items():
        print(f"held-out utility {name:>9}: {value:6.1f}", file=sys.stderr)
    print(out / "best.json")
    return 0 if np.isfinite(search.best_score_) else 1


def add_parser(commands) -> None:
    """Register the ``steerkit search`` subcommand on ``commands`` (the subparsers of ``steerkit``)."""
    defaults = _run_defaults()

    search = commands.add_parser(
        "search", help="grid or TPE search over layer x coefficient, judged on evaluation questions",
        description="Search steering configurations with a judge on the concept's evaluation questions "
        "(first half), then score the best configuration, the unsteered model and the prompting baseline "
        "on held-out questions. Writes OUT/trials.csv and OUT/best.json.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    search.add_argument("activations", help="activations.safetensors written by `steerkit extract`")
    search.add_argument("--method", choices=["tpe", "grid"], default="tpe", help="search strategy")
    search.add_argument("--n-trials", type=_positive_int, default=defaults["budget"],
                        help="TPE trials (a resumed study runs only the rest)")
    search.add_argument("--seed", type=_count, default=defaults["seed"], help="TPE sampler seed (same seed, same trials)")
    search.add_argument("--construction", choices=CONSTRUCTIONS, default="pv", help="steering-vector construction")
    search.add_argument("--layers", type=_count, nargs="+", default=None, help="restrict the search to these layers")
    search.add_argument("--coefficients", type=_finite_float, nargs="+", default=None,
                        help="coefficient choices (when not given: GRACE's 0.5..4.5 for TPE, 1 2 3 for the grid)")
    search.add_argument("--judge", choices=["embedding", "llm"], default="embedding",
                        help="embedding: offline MiniLM concept classifier + likelihood coherence; llm: the model as judge")
    search.add_argument("--concept", default=None, help="concept (when not given: the one recorded with the activations)")
    search.add_argument("--n-questions", type=_count, default=0, help="evaluation questions used by the search (0 = half)")
    search.add_argument("--n-held-out", type=_positive_int, default=defaults["n_held_out"],
                        help="held-out evaluation questions for the final comparison")
    search.add_argument("--cv", type=_count, default=0, help="question folds inside the search (0 = none)")
    search.add_argument("--instruction-role", choices=["user", "system"], default=defaults["instruction_role"],
                        help="for the prompting baseline (use the extraction's): " + ROLE_HELP)
    search.add_argument("--max-new-tokens", type=_positive_int, default=defaults["max_new_tokens"],
                        help="length limit of each answer in tokens")
    search.add_argument("--batch-size", type=_positive_int, default=defaults["batch_size"],
                        help="prompts per generation batch")
    search.add_argument("--storage", default=None, help="Optuna storage URL (e.g. sqlite:///study.db) to resume or share")
    search.add_argument("--study-name", default=None, help="Optuna study name (when not given: named after the activations, questions, judge and settings, "
                        "so a changed setting starts a new study)")
    search.add_argument("--out", default="steerkit-out/search", help="output directory")
    _add_model_options(search, default_model=None)
    search.set_defaults(func=_cmd_search)
