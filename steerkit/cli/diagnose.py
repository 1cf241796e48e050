"""``steerkit diagnose``: GRACE geometry diagnostics and recommendation per activation file."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._options import _finite_float, _positive_int


def _activation_file(path: str) -> Path:
    path = Path(path)
    return path / "activations.safetensors" if path.is_dir() else path


def _cmd_diagnose(args) -> int:
    from steerkit._paths import path_under, safe_name
    from steerkit.activations import ActivationSet
    from steerkit.diagnostics import GraceRecommender
    from steerkit.report import write_diagnostics

    for item in args.activations:
        activations = ActivationSet.load(_activation_file(item))
        name = safe_name(activations.concept or Path(item).stem, what="field 'concept'", source=item)
        recommender = GraceRecommender(
            top_k=args.top_k, pl_ra_threshold=args.pl_ra_threshold, cluster_share=args.cluster_share,
            magnitude_cv_threshold=args.magnitude_cv_threshold,
        ).fit(activations)
        folder = path_under(args.out, name)
        write_diagnostics(recommender, folder)
        print(f"\n{name} ({activations.n_contrasts} contrasts, {activations.model_name}): {recommender.recommendation_}")
        print(f"  tables and plots: {folder}")
    return 0


def add_parser(commands) -> None:
    """Register the ``steerkit diagnose`` subcommand on ``commands`` (the subparsers of ``steerkit``)."""
    diagnose = commands.add_parser(
        "diagnose", help="GRACE geometry diagnostics and recommendation per concept",
        description="Compute alignment, granularity, magnitude CV, PL/RA correlation, per-pair structure "
        "and ANOVA from activation files; print GRACE's recommendation (construction, search layers, "
        "budget) with its reasons; write OUT/<concept>/layers.csv, diagnostics.json and plots.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    diagnose.add_argument("activations", nargs="+", help="activation files (or folders holding activations.safetensors)")
    diagnose.add_argument("--out", default="steerkit-out/diagnostics", help="output directory")
    diagnose.add_argument("--top-k", type=_positive_int, default=15, help="layers kept per alignment profile")
    diagnose.add_argument("--pl-ra-threshold", type=_finite_float, default=0.2,
                          help="below this PL/RA correlation the search space is the PL ∪ RA union")
    diagnose.add_argument("--cluster-share", type=_finite_float, default=0.6,
                          help="share of layers with instruction-pair blocks that selects the cluster construction")
    diagnose.add_argument("--magnitude-cv-threshold", type=_finite_float, default=None,
                          help="magnitude CV above which unit_mean is chosen (off by default; GRACE: 0.45 on Gemma-3-27B)")
    diagnose.set_defaults(func=_cmd_diagnose)
