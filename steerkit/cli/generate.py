"""``steerkit generate``: steered answers with a saved vector or a file of ``steerkit train``."""

from __future__ import annotations

import argparse
import sys
import textwrap
import time
from pathlib import Path
from typing import TYPE_CHECKING

from . import _inputs
from ._inputs import _check_layer_index, _recorded_concept
from ._options import (
    DEFAULT_LAYER_FRACTION,
    _add_model_options,
    _count,
    _finite_float,
    _positive_int,
    _run_defaults,
)

if TYPE_CHECKING:
    import numpy as np


def _layer_vector(vector, layer: int, what: str, lm, path) -> np.ndarray:
    """The ``(d,)`` vector to add at ``layer`` of ``lm``, from a ``(d,)`` or ``(L + 1, d)``
    ``vector`` read from ``path``; ``what`` names where ``layer`` came from, for errors."""
    if vector.ndim == 2 and vector.shape[0] != lm.n_blocks + 1:
        raise ValueError(f"{path} holds {vector.shape[0]} layers but {lm.name} has {lm.n_blocks + 1}; "
                         "use the model it was fitted on (--model)")
    _check_layer_index(layer, lm.n_blocks + 1, what, f"{lm.name} ({lm.n_blocks} blocks, 0 = embedding output)")
    vector = vector[layer] if vector.ndim == 2 else vector
    if vector.shape[0] != lm.hidden_size:
        raise ValueError(f"{path} holds vectors of {vector.shape[0]} values but {lm.name} has hidden size "
                         f"{lm.hidden_size}; use the model it was fitted on (--model)")
    return vector


def _trained_file(path) -> tuple | None:
    """``(loader, model name)`` when ``path`` is a file of ``steerkit train`` (a trained
    steerer's ``.safetensors`` whose sidecar names its method, or a saved LoRA folder), else None."""
    import json

    from steerkit.estimators.files import vector_paths
    from steerkit.training import LoRAFineTuner, TrainedSteerer
    from steerkit.training.lora import METADATA_FILE

    if (Path(path) / METADATA_FILE).is_file():
        return LoRAFineTuner.load, json.loads((Path(path) / METADATA_FILE).read_text(encoding="utf-8")).get("model")
    sidecar_path = vector_paths(path)[1]
    try:
        sidecar = json.loads(sidecar_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None  # not a trained steerer: load_vector says what is wrong with it as a vector
    return (TrainedSteerer.load, sidecar.get("model")) if isinstance(sidecar, dict) and "method" in sidecar else None


def _generate_trained(args, loader, model_name) -> int:
    """``steerkit generate`` with a trained steerer or LoRA adapter (its sites, positions and
    coefficient are those it was trained with; ``--coefficient`` rescales BiPO/RePS vectors)."""
    from steerkit._values import check_coefficient

    if args.layer is not None:
        raise ValueError(f"--layer does not apply to {args.vector}: a trained steerer steers the sites it was trained at")
    questions = args.question or list(_recorded_concept(args.concept, None, None, args.vector, "--question TEXT")
                                      .evaluation_questions[: args.n_questions])
    lm = _inputs._load_model(args, args.model or model_name)
    steerer = loader(args.vector, lm, progress=False)
    if args.coefficient is not None:
        if "coefficient" not in steerer.get_params():
            raise ValueError(f"--coefficient does not apply to {args.vector} ({steerer.method}): only bipo and reps "
                             "vectors have one; drop it")
        steerer.set_params(coefficient=check_coefficient(args.coefficient, "--coefficient"))
    kwargs = {"max_new_tokens": args.max_new_tokens, "batch_size": args.batch_size}
    start = time.perf_counter()
    steered = steerer.generate(questions, **kwargs)
    print(f"steering with the trained {steerer.method} from {args.vector} ({len(questions)} answers in "
          f"{time.perf_counter() - start:.1f} s)", file=sys.stderr)
    records = _show_answers(questions, steered, lm.generate(questions, **kwargs) if args.compare else None)
    if args.out:
        from steerkit._io import write_json

        write_json(args.out, {"steerer": str(args.vector), "method": steerer.method, "model": lm.name,
                              "answers": records})
    return 0


def _show_answers(questions, steered, baseline) -> list[dict]:
    """Print each question with its steered (and unsteered, when ``baseline``) answer; the records."""
    records = []
    for i, question in enumerate(questions):
        record = {"question": question, "steered": steered[i]}
        print(f"\nQ: {question}")
        if baseline is not None:
            record["unsteered"] = baseline[i]
            print(textwrap.indent(textwrap.fill(baseline[i], 96), "  unsteered | "))
        print(textwrap.indent(textwrap.fill(steered[i], 96), "  steered   | "))
        records.append(record)
    return records


def _cmd_generate(args) -> int:
    from steerkit._values import check_coefficient
    from steerkit.estimators.files import load_vector, vector_paths
    from steerkit.lm import Site
    from steerkit.steering import steer

    if args.schedule is not None:
        from ._schedule import _cmd_generate_scheduled

        return _cmd_generate_scheduled(args)
    if args.vector is None:
        raise ValueError("steerkit generate needs a vector file (positional) or --schedule FILE")
    trained = _trained_file(args.vector)
    if trained is not None:
        return _generate_trained(args, *trained)
    vector, sidecar = load_vector(args.vector)
    tensor_path, sidecar_path = vector_paths(args.vector)
    if args.coefficient is not None:
        coefficient = check_coefficient(args.coefficient, "--coefficient")
    else:
        coefficient = 1.0 if sidecar.get("coefficient") is None else sidecar["coefficient"]
    layer = args.layer if args.layer is not None else sidecar.get("layer")
    what = f"--layer {layer}" if args.layer is not None else f"layer {layer} recorded in {sidecar_path}"
    if layer is not None and vector.ndim == 2:
        _check_layer_index(layer, vector.shape[0], what, f"{tensor_path} ({vector.shape[0]} layers)")
    questions = args.question or list(_recorded_concept(
        args.concept, sidecar.get("concept"), sidecar.get("concept_source"), args.vector, "--question TEXT",
    ).evaluation_questions[: args.n_questions])
    lm = _inputs._load_model(args, args.model or sidecar.get("model"))
    if layer is None:
        layer = round(DEFAULT_LAYER_FRACTION * lm.n_blocks)
        what = f"the default layer {layer}"
    vector = _layer_vector(vector, layer, what, lm, tensor_path)
    site = Site(layer, sidecar.get("component") or "residual")  # a sublayer vector is steered where it was read
    kwargs = {"max_new_tokens": args.max_new_tokens, "batch_size": args.batch_size}
    start = time.perf_counter()
    with steer(lm, vector, site, coefficient, positions=args.positions):
        steered = lm.generate(questions, **kwargs)
    elapsed = time.perf_counter() - start
    baseline = lm.generate(questions, **kwargs) if args.compare else None
    where = f"layer {layer}" if site.component == "residual" else f"layer {layer} ({site.component})"
    print(f"steering at {where} with coefficient {coefficient} on {args.positions} positions "
          f"({len(questions)} answers in {elapsed:.1f} s)", file=sys.stderr)
    records = _show_answers(questions, steered, baseline)
    if args.out:
        from steerkit._io import write_json

        write_json(args.out, {"layer": layer, "component": site.component, "coefficient": coefficient,
                              "positions": args.positions, "model": lm.name, "answers": records})
    return 0


def add_parser(commands) -> None:
    """Register the ``steerkit generate`` subcommand on ``commands`` (the subparsers of ``steerkit``)."""
    defaults = _run_defaults()

    gen = commands.add_parser(
        "generate", help="generate steered answers with a saved vector",
        description="Add coefficient x vector at the layer's block output while generating greedy answers.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    gen.add_argument("vector", nargs="?", default=None,
                     help="vector file written by `steerkit fit` (.safetensors, sidecar beside it), or the "
                     "trained file of `steerkit train` (steerer.safetensors, or LoRA's adapter folder)")
    gen.add_argument("--schedule", default=None, metavar="FILE",
                     help="instead of a vector: a JSON schedule switching vectors during each answer (phases with "
                          "vectors, layers, coefficients and until conditions; positions are set in the file)")
    gen.add_argument("--layer", type=_count, default=None, help="layer to steer (when not given: the one in the sidecar)")
    gen.add_argument("--coefficient", type=_finite_float, default=None, help="strength (when not given: the one in the sidecar)")
    gen.add_argument("--positions", default="response", choices=["response", "prompt", "all"],
                     help="which token positions are steered")
    gen.add_argument("-q", "--question", action="append", default=None,
                     help="a question to answer (repeatable; default: the concept's evaluation questions)")
    gen.add_argument("--concept", default=None, help="concept whose evaluation questions to use (when not given: the vector's)")
    gen.add_argument("--n-questions", type=_positive_int, default=4, help="how many evaluation questions")
    gen.add_argument("--max-new-tokens", type=_positive_int, default=defaults["max_new_tokens"],
                     help="length limit of each answer in tokens")
    gen.add_argument("--batch-size", type=_positive_int, default=defaults["batch_size"], help="prompts per generation batch")
    gen.add_argument("--compare", action="store_true", help="also print the unsteered answers")
    gen.add_argument("--out", default=None, help="also write the answers to this JSON file")
    _add_model_options(gen, default_model=None)
    gen.set_defaults(func=_cmd_generate)
