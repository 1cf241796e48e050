"""The ``steerkit`` command line."""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import textwrap
import time
import warnings
from pathlib import Path

DEFAULT_LAYER_FRACTION = 0.6  # mid-to-late depth: a rough prior until a search picks the layer
INTERRUPTED = 130  # exit status after Ctrl-C (128 + SIGINT, as shells report it)


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


def _check_device(name: str) -> None:
    """Raise a ValueError naming ``--device`` unless torch can parse ``name`` and the machine has it."""
    import torch

    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"--device {name!r} is not a torch device; use cpu, cuda, cuda:N or mps") from None
    if device.type == "cpu":
        return
    accelerator = torch.accelerator.current_accelerator()
    if accelerator is None or accelerator.type != device.type:
        present = f"has {accelerator.type}" if accelerator is not None else "has no accelerator"
        raise ValueError(f"--device {name!r}: this machine {present}; use --device cpu")
    if device.index is not None and device.index >= torch.accelerator.device_count():
        raise ValueError(f"--device {name!r}: this machine has {torch.accelerator.device_count()} {device.type} "
                         f"device(s), numbered from 0; use --device {device.type}:0 or --device cpu")


def _load_model(args, name: str | None):
    from steerkit.lm import load_model

    _check_device(args.device)
    start = time.perf_counter()
    lm = load_model(name, dtype=args.dtype, device=args.device, block_path=args.block_path,
                    trust_remote_code=args.trust_remote_code)
    print(f"loaded {lm} in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return lm


# -- extract ------------------------------------------------------------------------------
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
    lm = _load_model(args, args.model)  # checks --device before anything is written
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


# -- fit ----------------------------------------------------------------------------------
CONSTRUCTIONS = ("pv", "unit_mean", "cluster", "pca")


def _make_steerer(name: str):
    from steerkit.estimators import STEERERS

    return STEERERS[name]()


def _check_layer_index(layer: int, n_layers: int, what: str, where: str) -> int:
    """``layer`` if it indexes one of ``n_layers`` layers (0..n_layers-1), else a ValueError.

    ``what`` names the value (``"--layer 7"``), ``where`` what it indexes (a file, a model).
    """
    if not 0 <= layer < n_layers:
        raise ValueError(f"{what} is out of range for {where}: use --layer 0..{n_layers - 1}")
    return layer


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


# -- generate -----------------------------------------------------------------------------
def _recorded_concept(given: str | None, name: str | None, source: str | None, path, alternative: str = ""):
    """The concept a file was made from: ``given`` (``--concept``) when set, else the concept
    file recorded with it (``source``, an absolute path) while it exists, else the bundled
    concept ``name``. ``path`` (the file) and ``alternative`` (another option that would do)
    word the error when none of these works."""
    from steerkit.concepts import list_concepts, load_concept

    if given:
        return load_concept(given)
    if source and Path(source).is_file():
        return load_concept(source)
    if name in list_concepts():
        return load_concept(name)
    fix = "pass --concept NAME_OR_FILE" + (f" or {alternative}" if alternative else "")
    if not name and not source:
        raise ValueError(f"{path} names no concept: {fix}")
    where = f"its file {source} no longer exists" if source else "its concept file is not recorded"
    raise ValueError(f"{path} was made from concept {name!r}, which is not bundled, and {where}: {fix}")


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


def _cmd_generate(args) -> int:
    from steerkit._values import check_coefficient
    from steerkit.estimators.files import load_vector, vector_paths
    from steerkit.lm import Site
    from steerkit.steering import steer

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
    lm = _load_model(args, args.model or sidecar.get("model"))
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
    records = []
    for i, question in enumerate(questions):
        record = {"question": question, "steered": steered[i]}
        print(f"\nQ: {question}")
        if baseline is not None:
            record["unsteered"] = baseline[i]
            print(textwrap.indent(textwrap.fill(baseline[i], 96), "  unsteered | "))
        print(textwrap.indent(textwrap.fill(steered[i], 96), "  steered   | "))
        records.append(record)
    if args.out:
        from steerkit._io import write_json

        write_json(args.out, {"layer": layer, "component": site.component, "coefficient": coefficient,
                              "positions": args.positions, "model": lm.name, "answers": records})
    return 0


# -- search -------------------------------------------------------------------------------
def _make_judge(kind: str, lm, activations, concept):
    from steerkit.metrics import EmbeddingJudge, LikelihoodCoherence, LLMJudge

    if kind == "embedding":
        if activations.samples is None:
            raise ValueError("the embedding judge trains on the extraction answers, but this activation file has none")
        return EmbeddingJudge(LikelihoodCoherence(lm)).fit_samples(activations.samples)
    return LLMJudge.for_concept(concept, model=lm)


def _cmd_search(args) -> int:
    import numpy as np
    import pandas as pd

    from steerkit._io import write_json, write_text
    from steerkit.activations import ActivationSet
    from steerkit.model_selection import GridSearchSteer, TPESearchSteer, grace_grid, grace_space
    from steerkit.steering import PromptSteerer, SteeredModel

    activations = ActivationSet.load(args.activations)
    concept = _recorded_concept(args.concept, activations.concept, activations.info.get("concept_source"),
                                args.activations)
    lm = _load_model(args, args.model or activations.model_name)
    judge = _make_judge(args.judge, lm, activations, concept)
    questions = list(concept.evaluation_questions)
    n_search = args.n_questions or len(questions) // 2
    search_questions, held_out = questions[:n_search], questions[n_search:n_search + args.n_held_out]
    if not held_out:
        raise ValueError("no held-out evaluation questions left: lower --n-questions")
    estimator = SteeredModel(lm, _make_steerer(args.construction), max_new_tokens=args.max_new_tokens,
                             batch_size=args.batch_size)
    coefficients = args.coefficients
    if args.method == "grid":
        grid = grace_grid(lm.n_blocks, coefficients=coefficients or (1.0, 2.0, 3.0))
        search = GridSearchSteer(estimator, grid, judge, layers=args.layers, cv=args.cv or None)
    else:
        space = grace_space(lm.n_blocks, coefficients=coefficients) if coefficients else grace_space(lm.n_blocks)
        search = TPESearchSteer(estimator, space, judge, n_trials=args.n_trials, random_state=args.seed,
                                layers=args.layers, cv=args.cv or None, storage=args.storage,
                                study_name=args.study_name)
    start = time.perf_counter()
    search.fit(activations, search_questions)
    elapsed = time.perf_counter() - start
    out = Path(args.out)
    trials = search.history_
    write_text(out / "trials.csv", trials.to_csv(index=False))
    held = {
        "steered": judge(search.best_estimator_, held_out),
        "unsteered": judge(PromptSteerer(lm, max_new_tokens=args.max_new_tokens), held_out),
        "prompting": judge(PromptSteerer.from_concept(lm, concept, role=args.instruction_role,
                                                      max_new_tokens=args.max_new_tokens), held_out),
    }
    best = {
        "concept": concept.name, "model": lm.name, "method": args.method, "seed": args.seed,
        "construction": args.construction, "judge": args.judge,
        "best_params": {k: (v if isinstance(v, (int, float, str)) else repr(v)) for k, v in search.best_params_.items()},
        "best_search_utility": search.best_score_, "n_trials": int(len(trials)),
        "trials_to_95": search.trials_to(0.95), "search_seconds": round(elapsed, 1),
        "search_questions": len(search_questions), "held_out_questions": len(held_out),
        "held_out_utility": {k: float(v) for k, v in held.items()},
    }
    write_json(out / "best.json", best)
    print(pd.Series({k: v for k, v in best.items() if k != "held_out_utility"}).to_string(), file=sys.stderr)
    for name, value in held.items():
        print(f"held-out utility {name:>9}: {value:6.1f}", file=sys.stderr)
    print(out / "best.json")
    return 0 if np.isfinite(search.best_score_) else 1


# -- diagnose -----------------------------------------------------------------------------
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


# -- run ----------------------------------------------------------------------------------
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
    lm = _load_model(args, args.model)
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


# -- concepts -----------------------------------------------------------------------------
def _cmd_concepts(args) -> int:
    from steerkit.concepts import list_concepts, load_concept

    for name in list_concepts():
        c = load_concept(name)
        print(f"{name:<15} {c.category:<8} {c.n_pairs} pairs, {len(c.extraction_questions):>3} + "
              f"{len(c.evaluation_questions):<3} questions  {c.description}")
    return 0


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


# -- parser -------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="steerkit",
        description="Activation steering with GRACE diagnostics. Layers: l = output of decoder block l "
        "(1-based), 0 = embedding output.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
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

    gen = commands.add_parser(
        "generate", help="generate steered answers with a saved vector",
        description="Add coefficient x vector at the layer's block output while generating greedy answers.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    gen.add_argument("vector", help="vector file written by `steerkit fit` (.safetensors, sidecar beside it)")
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

    listing = commands.add_parser("concepts", help="list the bundled concepts",
                                  description="List the bundled concepts with their category and size.")
    listing.set_defaults(func=_cmd_concepts)

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

    search = commands.add_parser(
        "search", help="grid or TPE search over layer x coefficient, judged on evaluation questions",
        description="Search steering configurations with a judge on the concept's evaluation questions "
        "(first half), then score the best configuration, the unsteered model and the prompting baseline "
        "on held-out questions. Writes OUT/trials.csv and OUT/best.json.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    search.add_argument("activations", help="activations.safetensors written by `steerkit extract`")
    search.add_argument("--method", choices=["tpe", "grid"], default="tpe", help="search strategy")
    search.add_argument("--n-trials", type=_positive_int, default=defaults["budget"],
                        help="TPE trials (a resumed study runs only the rest)")
    search.add_argument("--seed", type=_count, default=defaults["seed"], help="TPE sampler seed (same seed, same trials)")
    search.add_argument("--construction", choices=CONSTRUCTIONS, default="pv", help="steering-vector construction")
    search.add_argument("--layers", type=_count, nargs="+", default=None, help="restrict the search to these layers")
    search.add_argument("--coefficients", type=_finite_float, nargs="+", default=None,
                        help="coefficient choices (when not given: GRACE's 0.5..4.5 for TPE, 1 2 3 for the grid)")
    search.add_argument("--judge", choices=["embedding", "llm"], default="embedding",
                        help="embedding: offline MiniLM concept classifier + likelihood coherence; llm: the model as judge")
    search.add_argument("--concept", default=None, help="concept (when not given: the one recorded with the activations)")
    search.add_argument("--n-questions", type=_count, default=0, help="evaluation questions used by the search (0 = half)")
    search.add_argument("--n-held-out", type=_positive_int, default=defaults["n_held_out"],
                        help="held-out evaluation questions for the final comparison")
    search.add_argument("--cv", type=_count, default=0, help="question folds inside the search (0 = none)")
    search.add_argument("--instruction-role", choices=["user", "system"], default=defaults["instruction_role"],
                        help="for the prompting baseline (use the extraction's): " + ROLE_HELP)
    search.add_argument("--max-new-tokens", type=_positive_int, default=defaults["max_new_tokens"],
                        help="length limit of each answer in tokens")
    search.add_argument("--batch-size", type=_positive_int, default=defaults["batch_size"],
                        help="prompts per generation batch")
    search.add_argument("--storage", default=None, help="Optuna storage URL (e.g. sqlite:///study.db) to resume or share")
    search.add_argument("--study-name", default=None, help="Optuna study name (when not given: named after the activations, questions, judge and settings, "
                        "so a changed setting starts a new study)")
    search.add_argument("--out", default="steerkit-out/search", help="output directory")
    _add_model_options(search, default_model=None)
    search.set_defaults(func=_cmd_search)
    return parser


# -- errors -------------------------------------------------------------------------------
_PATH_ERROR_HINTS = {  # most specific first: each is an OSError carrying the path in .filename
    FileNotFoundError: "does not exist; check the path",
    IsADirectoryError: "is a folder, not a file; give the path of a file",
    NotADirectoryError: "has a file where a folder is expected; choose another path",
    PermissionError: "is not accessible (permission denied); fix its permissions or choose another path",
    FileExistsError: "already exists; remove it or choose another path",
}


def _path_error_message(err: OSError) -> str:
    """``"<path> <what is wrong>; <what to do>"`` for an OSError raised on a path."""
    for cls, hint in _PATH_ERROR_HINTS.items():
        if isinstance(err, cls):
            return f"{err.filename} {hint}"
    return f"{err.filename}: {err.strerror.lower()}; choose another path"


def _key_error_message(err: KeyError) -> str:
    """A KeyError's own sentence, or one naming the missing key (never the bare repr ``'vector'``)."""
    key = err.args[0] if err.args else None
    if isinstance(key, str) and " " in key:
        return key
    return (f"missing field {key!r} in an input file or setting; re-create the file with this version "
            "of steerkit (if it was, report this as a bug)")


def _module_error_message(err: ModuleNotFoundError) -> str:
    """The library's install hint, or one for a bare ``No module named 'x'``."""
    if str(err) != f"No module named {err.name!r}":
        return str(err)
    return f"the Python module {err.name!r} is not installed; install the package that provides it and re-run"


def _user_error_message(err: Exception) -> str | None:
    """The one-line message for an error the user can act on, or None for a bug (a traceback).

    User errors are ValueErrors (the library's own classes included: ``ConceptError``,
    ``BlocksNotFoundError``, the endpoint errors), OSErrors, missing modules and KeyErrors.
    """
    if isinstance(err, KeyError):
        text = _key_error_message(err)
    elif isinstance(err, ModuleNotFoundError):
        text = _module_error_message(err)
    elif isinstance(err, OSError) and err.filename is not None and err.strerror:
        text = _path_error_message(err)
    elif isinstance(err, (ValueError, OSError)):
        text = str(err)
    else:
        return None
    return " ".join(text.split())


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Print a warning as one ``warning: ...`` line on stderr (no source location)."""
    print("warning: " + " ".join(str(message).split()), file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``steerkit`` console script.

    Exit status: 0 on success, 2 for a mistake the user can fix (one ``error:`` line on stderr),
    130 after Ctrl-C. Other exceptions are bugs and keep their traceback.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            return args.func(args)
        except KeyboardInterrupt:
            print("interrupted; re-run the same command to resume", file=sys.stderr)
            return INTERRUPTED
        except Exception as err:
            message = _user_error_message(err)
            if message is None:
                raise
            print(f"error: {message}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(main())
