"""``steerkit run``: the whole GRACE workflow for one or more concepts."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from . import _inputs
from ._options import _add_extraction_options, _add_model_options, _count, _positive_int, _run_defaults


def _cmd_run(args) -> int:
    from steerkit.concepts import load_concept
    from steerkit.workflow import RunSettings, check_prompts_fit, run_concept

    concepts = [load_concept(name) for name in args.concepts]
    settings = RunSettings(n_questions=args.n_questions, max_new_tokens=args.max_new_tokens, budget=args.budget,
                           seed=args.seed, n_search_questions=args.n_search_questions, n_held_out=args.n_held_out,
                           batch_size=args.batch_size, min_coherence=args.min_coherence,
                           instruction_role=args.instruction_role)
    for concept in concepts:
        settings.check(concept, warn=False)  # run_concept warns, once per concept
    lm = _inputs._load_model(args, args.model)
    for concept in concepts:  # before the first concept generates anything
        check_prompts_fit(lm, concept, settings)
    for concept in concepts:
        start = time.perf_counter()
        summary = run_concept(lm, concept, Path(args.out), settings)
        held, best = summary.held_out, summary.best
        print(f"\n{concept.name}: {summary.recommendation['construction']} recommended; best "
              f"{best['construction']} at layer {best['layer']} x {best['coefficient']:g} "
              f"({time.perf_counter() - start:.0f} s)")
        print(f"  utility on {summary.n_held_out} held-out questions:")
        for name in ("unsteered", "prompting", "steered"):
            print(f"    {name:>9}: {held.loc[name, 'utility']:5.1f}  (concept {held.loc[name, 'concept']:5.1f}, "
                  f"coherence {held.loc[name, 'coherence']:5.1f})")
        print(f"  report: {Path(args.out) / concept.name / 'report.html'}")
    return 0


def add_parser(commands) -> None:
    """Register the ``steerkit run`` subcommand on ``commands`` (the subparsers of ``steerkit``)."""
    defaults = _run_defaults()

    run = commands.add_parser(
        "run", help="the whole GRACE workflow for one or more concepts, with an HTML report",
        description="Contrastive answers with judge filtering, activation extraction, diagnostics and "
        "recommendation, geometry-guided TPE search over layer x coefficient x construction, held-out "
        "comparison of steering against the unsteered model and the prompting baseline. Everything is "
        "cached under OUT/<concept>/, so a re-run or an interrupted run resumes. Writes report.html, "
        "summary.json, trials.csv and the best vector (safetensors + llama.cpp GGUF, which already includes "
        "the coefficient: load it with --control-vector-scaled best.gguf:1.0).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    run.add_argument("concepts", nargs="*", default=["formal"], help="bundled concept names or concept JSON files")
    run.add_argument("--out", default="steerkit-out", help="output directory")
    run.add_argument("--budget", type=_positive_int, default=defaults["budget"],
                     help="TPE trials of the geometry-guided search")
    run.add_argument("--seed", type=_count, default=defaults["seed"], help="search seed")
    run.add_argument("--n-search-questions", type=_positive_int, default=defaults["n_search_questions"],
                     help="evaluation questions judged during the search")
    run.add_argument("--n-held-out", type=_positive_int, default=defaults["n_held_out"],
                     help="other evaluation questions for the final comparison (a warning below 8)")
    _add_extraction_options(run, defaults)
    _add_model_options(run, default_model=None)
    run.set_defaults(func=_cmd_run)
