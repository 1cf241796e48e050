"""Option types and the options several ``steerkit`` commands share."""

from __future__ import annotations

import argparse
import dataclasses
import math

DEFAULT_LAYER_FRACTION = 0.6  # mid-to-late depth: a rough prior until a search picks the layer
CONSTRUCTIONS = ("pv", "unit_mean", "cluster", "pca")


# -- option types: argparse names the option and exits with status 2 ---------------------
def _int_at_least(minimum: int):
    """An argparse ``type`` accepting integers ``>= minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


_positive_int = _int_at_least(1)
_count = _int_at_least(0)


def _finite_float(text: str) -> float:
    """An argparse ``type`` accepting finite numbers (no nan, inf)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def _run_defaults() -> dict:
    """name -> default of every :class:`~steerkit.run_settings.RunSettings` field: the options
    that set a run's knobs read their defaults from there, so one place defines them."""
    from steerkit.run_settings import RunSettings

    return {field.name: field.default for field in dataclasses.fields(RunSettings)}


ROLE_HELP = ("where the concept's instructions go: before the question in the user turn (small models follow it "
             "far better) or as the system prompt (GRACE); the same default for every command, so a search or "
             "run reuses the answers of an extract")


def _add_extraction_options(parser: argparse.ArgumentParser, defaults: dict) -> None:
    """The options ``extract`` and ``run`` share: how the contrastive answers are made and
    filtered (defaults from :class:`~steerkit.run_settings.RunSettings`)."""
    parser.add_argument("--n-questions", type=_count, default=defaults["n_questions"],
                        help="extraction questions (x 5 pairs x pos/neg answers; 0 = all)")
    parser.add_argument("--max-new-tokens", type=_positive_int, default=defaults["max_new_tokens"],
                        help="length limit of each answer in tokens")
    parser.add_argument("--batch-size", type=_positive_int, default=defaults["batch_size"],
                        help="sequences per batch")
    parser.add_argument("--min-coherence", type=_finite_float, default=defaults["min_coherence"],
                        help="extraction answers less coherent than this (0-100) fail the judge filter")
    parser.add_argument("--instruction-role", choices=["user", "system"], default=defaults["instruction_role"],
                        help=ROLE_HELP)


def _add_model_options(parser: argparse.ArgumentParser, *, default_model: str | None = None) -> None:
    group = parser.add_argument_group("model")
    group.add_argument(
        "--model", default=default_model,
        help="embedded alias (smollm2-135m-instruct, gemma3-270m), a .gguf file, a local "
        "transformers folder or a Hugging Face id; when absent: the model recorded with the input file, "
        "else the embedded SmolLM2-135M-Instruct",
    )
    group.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                       help="weights and compute dtype (bfloat16 is ~2x faster on recent CPUs)")
    group.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda, cuda:1")
    group.add_argument("--block-path", default=None,
                       help="dotted path of the decoder block list, only if steerkit cannot find it")
    group.add_argument("--trust-remote-code", action="store_true",
                       help="allow custom model code from the model folder (off by default)")
