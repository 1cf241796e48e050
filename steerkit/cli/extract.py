"""``steerkit extract``: contrastive answers, the judge filter and activations for one concept."""

from __future__ import annotations

import argparse
import sys
import time

from . import _inputs
from ._options import _add_extraction_options, _add_model_options, _run_defaults


def _cmd_extract(args) -> int:
    from steerkit._lock import exclusive
    from steerkit._paths import path_under
    from steerkit.concepts import load_concept
    from steerkit.workflow import RunSettings, contrastive_answers, judged_activations

    concept = load_concept(args.concept)
    folder = path_under(args.out, concept.name)
    settings = RunSettings(n_questions=args.n_questions, max_new_tokens=args.max_new_tokens,
                           batch_size=args.batch_size, min_coherence=args.min_coherence,
                           instruction_role=args.instruction_role)
    settings.check_extraction(concept)
    lm = _inputs._load_model(args, args.model)  # checks --device before anything is written
    with exclusive(folder / ".lock", folder):  # the same lock as steerkit run's on this folder
        start = time.perf_counter()
        samples, reused = contrastive_answers(lm, concept, folder, settings, force=args.force)
        if reused:
            print(f"reusing {len(samples)} cached answers from {folder / 'generations.json'}", file=sys.stderr)
        else:
            print(f"generated {len(samples)} answers in {time.perf_counter() - start:.1f} s", file=sys.stderr)
        start = time.perf_counter()
        activations, note = judged_activations(lm, samples, concept, folder, settings)
    print(f"the judge filter kept {note['kept']} of {note['contrasts']} contrasts; {activations} "
          f"in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    print(folder / "activations.safetensors")
    return 0


def add_parser(commands) -> None:
    """Register the ``steerkit extract`` subcommand on ``commands`` (the subparsers of ``steerkit``)."""
    defaults = _run_defaults()

    extract = commands.add_parser(
        "extract", help="contrastive generation + activation extraction for a concept",
        description="Answer the concept's extraction questions under every positive and negative "
        "instruction, filter the answers with the judges as `steerkit run` does, then read prompt_last / "
        "prompt_avg / response_avg activations of the kept contrasts at all layers. Writes "
        "OUT/<concept>/generations.json, judge_filter.json, filtered_answers.csv and activations.safetensors: "
        "the same files, cached the same way, as `steerkit run` with the same settings, so either command "
        "reuses what the other wrote and never an unfiltered or differently made file.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    extract.add_argument("concept", help="bundled concept name (see steerkit/concepts/data) or path to a concept JSON")
    extract.add_argument("--out", default="steerkit-out", help="output directory")
    extract.add_argument("--force", action="store_true", help="regenerate answers even if cached")
    _add_extraction_options(extract, defaults)
    _add_model_options(extract, default_model=None)
    extract.set_defaults(func=_cmd_extract)
