"""``steerkit concepts``: the bundled concepts."""

from __future__ import annotations


def _cmd_concepts(args) -> int:
    from steerkit.concepts import list_concepts, load_concept

    for name in list_concepts():
        c = load_concept(name)
        print(f"{name:<15} {c.category:<8} {c.n_pairs} pairs, {len(c.extraction_questions):>3} + "
              f"{len(c.evaluation_questions):<3} questions  {c.description}")
    return 0


def add_parser(commands) -> None:
    """Register the ``steerkit concepts`` subcommand on ``commands`` (the subparsers of ``steerkit``)."""
    listing = commands.add_parser("concepts", help="list the bundled concepts",
                                  description="List the bundled concepts with their category and size.")
    listing.set_defaults(func=_cmd_concepts)
