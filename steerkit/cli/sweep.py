"""``steerkit sweep``: a layer x coefficient sweep of a concept's vector, with zones and plots."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import _inputs
from ._inputs import _make_steerer
from ._options import CONSTRUCTIONS, _add_extraction_options, _add_model_options, _finite_float, _positive_int, _run_defaults

DEFAULT_COEFFICIENTS = (1.0, 2.0, 4.0, 8.0, 16.0)


def _cmd_sweep(args) -> int:
    from steerkit._io import write_json, write_text
    from steerkit._paths import path_under
    from steerkit.concepts import load_concept
    from steerkit.metrics import EmbeddingJudge, LikelihoodCoherence
    from steerkit.model_selection import SteeringSweep
    from steerkit.report.sweep_plots import write_sweep_plots
    from steerkit.workflow import RunSettings, contrastive_answers, judged_activations

    concept = load_concept(args.concept)
    settings = RunSettings(n_questions=args.n_questions, max_new_tokens=args.max_new_tokens,
                           batch_size=args.batch_size, min_coherence=args.min_coherence,
                           instruction_role=args.instruction_role)
    settings.check(concept, warn=False)
    lm = _inputs._load_model(args, args.model)
    folder = path_under(Path(args.out), concept.name)
    layers = args.layers or list(range(args.every, lm.n_blocks + 1, args.every))
    if any(layer > lm.n_blocks for layer in layers):
        raise ValueError(f"--layers must be in 0..{lm.n_blocks} for {lm.name}")
    samples, _ = contrastive_answers(lm, concept, folder, settings)  # the run's cached answers and activations
    activations, _ = judged_activations(lm, samples, concept, folder, settings)
    judge = None
    if args.judge == "embedding":
        judge = EmbeddingJudge(LikelihoodCoherence(lm, batch_size=args.batch_size)).fit_samples(activations.samples)
    questions = list(concept.evaluation_questions)[: args.n_eval_questions]
    out = folder / "sweep"
    sweep = SteeringSweep(lm, _make_steerer(args.construction), layers, args.coefficients, judge=judge,
                          max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, n_batch=args.n_batch,
                          cache=out / "cache.json").fit(activations, questions)
    write_text(out / "sweep.csv", sweep.results_.to_csv(index=False))
    plots = write_sweep_plots(sweep.results_, sweep.zones_, out)
    zones = sweep.zones_.reset_index()
    write_json(out / "sweep.json", {
        "concept": concept.name, "model": lm.name, "construction": args.construction, "layers": layers,
        "coefficients": list(args.coefficients), "n_questions": len(questions), "judge": args.judge,
        "zones": zones.to_dict(orient="records"), "plots": plots})
    print(zones.to_string(index=False), file=sys.stderr)
    for line in sweep.comparison_lines("utility" if judge is not None else "coherence"):
        print(line, file=sys.stderr)
    print(out / "sweep.json")
    return 0


def add_parser(commands) -> None:
    """Register the ``steerkit sweep`` subcommand on ``commands`` (the subparsers of ``steerkit``)."""
    defaults = _run_defaults()
    sweep = commands.add_parser(
        "sweep", help="layer x coefficient sweep of a concept's vector: change rate, KL bits, coherence, zones",
        description="Reuse (or make) the concept's contrastive answers and activations under OUT/<concept>/ as "
        "`steerkit run` does, fit the vector, and measure every layer x coefficient on evaluation questions: "
        "change rate, KL in bits, coherence (and utility with --judge embedding), each with a confidence "
        "interval. Writes OUT/<concept>/sweep/sweep.csv, sweep.json (zones: unstable / sweet spot / weak / "
        "frozen, collapse coefficient per layer) and the plots; cells are cached, so a re-run resumes.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sweep.add_argument("concept", help="bundled concept name or concept JSON file")
    sweep.add_argument("--out", default="steerkit-out", help="output directory (shared with `steerkit run`)")
    sweep.add_argument("--layers", type=_positive_int, nargs="+", default=None,
                       help="layers to sweep (when not given: every --every-th layer)")
    sweep.add_argument("--every", type=_positive_int, default=3, help="layer step when --layers is not given")
    sweep.add_argument("--coefficients", type=_finite_float, nargs="+", default=list(DEFAULT_COEFFICIENTS),
                       help="strengths to sweep")
    sweep.add_argument("--construction", choices=CONSTRUCTIONS, default="pv", help="steering-vector construction")
    sweep.add_argument("--judge", choices=["none", "embedding"], default="none",
                       help="none: change rate = any change of the answer, likelihood coherence; embedding: the "
                       "offline concept judge labels changes and adds utility")
    sweep.add_argument("--n-eval-questions", type=_positive_int, default=8, help="evaluation questions per cell")
    sweep.add_argument("--n-batch", type=_positive_int, default=8,
                       help="cells answered together in one per-row-steered generation")
    _add_extraction_options(sweep, defaults)
    _add_model_options(sweep, default_model=None)
    sweep.set_defaults(func=_cmd_sweep)
