"""``steerkit new-concept``: a new concept JSON, scaffolded or drafted by a model."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._options import _positive_int


def _cmd_new_concept(args) -> int:
    from steerkit._paths import safe_name
    from steerkit.concepts import generate_concept, scaffold_concept

    name = safe_name(args.name, what="argument NAME")
    path = Path(args.out or f"{name}.json")
    if path.exists() and not args.force:
        raise ValueError(f"{path} exists; pass --force to overwrite it")
    description = args.description or f"{args.name}"
    if args.generate:
        from steerkit.metrics import OpenAICompatibleClient

        client = OpenAICompatibleClient(args.generator_model, base_url=args.base_url)
        concept = generate_concept(args.name, description, client, n_questions=args.n_questions)
    else:
        concept = scaffold_concept(args.name, description)
    concept.save(path)
    print(path)
    print("edit the instruction pairs and questions, then: steerkit run " + str(path), file=sys.stderr)
    return 0


def add_parser(commands) -> None:
    """Register the ``steerkit new-concept`` subcommand on ``commands`` (the subparsers of ``steerkit``)."""
    new = commands.add_parser(
        "new-concept", help="write a new concept JSON (scaffold, or drafted by an OpenAI-compatible model)",
        description="Write NAME.json in the GRACE concept shape. Without --generate it is a valid scaffold "
        "(templated instruction pairs, everyday questions) to edit; with --generate a model behind an "
        "OpenAI-compatible endpoint (OPENAI_BASE_URL, OPENAI_API_KEY) drafts it and steerkit validates it.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    new.add_argument("name", help="concept name (file stem)")
    new.add_argument("--description", default=None, help="one sentence on the behaviour to steer towards")
    new.add_argument("--out", default=None, help="output file (when not given: NAME.json)")
    new.add_argument("--force", action="store_true", help="overwrite an existing file")
    new.add_argument("--generate", action="store_true", help="draft the concept with an OpenAI-compatible model")
    new.add_argument("--generator-model", default="gpt-4o-mini", help="model name for --generate")
    new.add_argument("--base-url", default=None, help="endpoint for --generate (when not given: $OPENAI_BASE_URL)")
    new.add_argument("--n-questions", type=_positive_int, default=24, help="questions per split for --generate")
    new.set_defaults(func=_cmd_new_concept)
