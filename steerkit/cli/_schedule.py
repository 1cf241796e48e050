"""``steerkit generate --schedule FILE``: answers steered by a schedule that switches vectors
during each generation (see :mod:`steerkit.steering.schedule_file` for the file format)."""

from __future__ import annotations

import sys
import time

from . import _inputs
from .generate import _show_answers


def _cmd_generate_scheduled(args) -> int:
    from steerkit.concepts import load_concept
    from steerkit.steering.schedule import generate_scheduled
    from steerkit.steering.schedule_file import load_schedule

    if args.vector is not None:
        raise ValueError(f"pass either a vector file ({args.vector}) or --schedule {args.schedule}, not both")
    for option, value in (("--layer", args.layer), ("--coefficient", args.coefficient)):
        if value is not None:
            raise ValueError(f"{option} does not apply with --schedule: set it per vector in {args.schedule}")
    if not args.question and not args.concept:
        raise ValueError("--schedule needs questions: pass --question TEXT (repeatable) or --concept NAME_OR_FILE")
    questions = args.question or list(load_concept(args.concept).evaluation_questions[: args.n_questions])
    lm = _inputs._load_model(args, args.model)
    schedule = load_schedule(args.schedule, lm)
    kwargs = {"max_new_tokens": args.max_new_tokens, "batch_size": args.batch_size}
    start = time.perf_counter()
    answers, switches = generate_scheduled(lm, [lm.chat_prompt(q) for q in questions], schedule,
                                           return_switches=True, **kwargs)
    elapsed = time.perf_counter() - start
    baseline = lm.generate(questions, **kwargs) if args.compare else None
    names = [phase.name for phase in schedule.phases]
    print(f"steering by the {len(names)}-phase schedule {args.schedule} ({len(questions)} answers in {elapsed:.1f} s)",
          file=sys.stderr)
    records = _show_answers(questions, answers, baseline)
    for record, entered in zip(records, switches):
        record["phase_starts"] = {names[k + 1]: token for k, token in enumerate(entered)}
    if args.out:
        from steerkit._io import write_json

        write_json(args.out, {"schedule": str(args.schedule), "phases": names, "model": lm.name, "answers": records})
    return 0
