"""``steerkit fit``: steering vectors fitted on an activation file."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ._inputs import _check_layer_index, _make_steerer
from ._options import CONSTRUCTIONS, DEFAULT_LAYER_FRACTION, _count, _finite_float


def _cmd_fit(args) -> int:
    from steerkit._values import check_coefficient
    from steerkit.activations import ActivationSet
    from steerkit.estimators.files import save_vector

    coefficient = check_coefficient(args.coefficient, "--coefficient")
    activations = ActivationSet.load(args.activations)
    out = Path(args.out) if args.out else Path(args.activations).parent / "vectors"
    X, y, metadata = activations.steerer_inputs(args.position)
    if args.layer is None:
        layer = round(DEFAULT_LAYER_FRACTION * (activations.n_layers - 1))
    else:
        layer = _check_layer_index(args.layer, activations.n_layers, f"--layer {args.layer}",
                                   f"{args.activations} ({activations.n_layers} layers)")
    for name in args.construction:
        start = time.perf_counter()
        steerer = _make_steerer(name).fit(X, y, **metadata)
        path = save_vector(
            out / name, steerer.vector_, model=activations.model_name, layer=layer, construction=name,
            concept=activations.concept, concept_source=activations.info.get("concept_source"),
            coefficient=coefficient, position=args.position, n_contrasts=activations.n_contrasts,
        )
        norm = float((steerer.vector_[layer] ** 2).sum() ** 0.5)
        print(f"{name:>9}: fitted in {1000 * (time.perf_counter() - start):.0f} ms, "
              f"|v| at layer {layer} = {norm:.2f} -> {path}", file=sys.stderr)
        print(path)
    return 0


def add_parser(commands) -> None:
    """Register the ``steerkit fit`` subcommand on ``commands`` (the subparsers of ``steerkit``)."""
    fit = commands.add_parser(
        "fit", help="fit steering vectors (PV, unit-mean, cluster, PCA) from an activation file",
        description="Fit one steering vector per construction on all layers and save each as "
        "<out>/<construction>.safetensors with a JSON sidecar (model, layer, construction, concept, "
        "hidden size, coefficient).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    fit.add_argument("activations", help="activations.safetensors written by `steerkit extract`")
    fit.add_argument("--construction", nargs="+", choices=CONSTRUCTIONS, default=["pv", "unit_mean", "cluster"],
                     help="vector constructions to fit")
    fit.add_argument("--position", default="response_avg", choices=["response_avg", "prompt_avg", "prompt_last"],
                     help="which pooled activations to fit on (GRACE: response_avg)")
    fit.add_argument("--layer", type=_count, default=None,
                     help=f"layer recorded as the default for generation (when not given: {DEFAULT_LAYER_FRACTION} x depth)")
    fit.add_argument("--coefficient", type=_finite_float, default=2.5, help="strength recorded as the default for generation")
    fit.add_argument("--out", default=None, help="output directory (when not given: beside the activations, vectors/)")
    fit.set_defaults(func=_cmd_fit)
