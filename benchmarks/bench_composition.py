"""Composition vs switching, conditional steering (CAST) and cross-model geometry on the embedded
models (issue 14, items 4-6; seed 001's "orchestrator", "addition dilutes", ρ > 0.88).

- Domain vectors: for each bundled concept, the mean difference of the ``prompt_last``
  activations of its extraction questions asked under the positive vs the negative instruction
  (user role), at every layer.
- Composition vs switching on a two-domain prompt set (a maritime question followed by a culinary
  one): unsteered, both vectors added at once (``compose``, weights ``alpha, alpha``), and a
  ``SteeringSchedule`` (maritime vector for the first half of the answer, then culinary). Domain
  relevance = keyword hits per answer for each domain and the share of answers hitting both.
- CAST: a ``ConditionalSteering`` whose condition (maritime vs culinary questions) is fitted on
  half of the extraction questions; precision/recall of "steer this prompt" on the other half.
- Cross-model ρ (``--gemma``): concept-similarity matrices of all bundled concepts at relative
  depth ``--depth`` on SmolLM2-135M and Gemma-3-270M, Spearman/Pearson and Mantel p.

Tiny check:  python benchmarks/bench_composition.py --n-questions 2 --max-new-tokens 16 --concepts 4
Full run:    python benchmarks/bench_composition.py --n-questions 20 --max-new-tokens 96 --gemma
             (writes benchmarks/results/composition.json; about 15-25 minutes on 2 CPU cores)
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import precision_score, recall_score

from steerkit import load_concept, load_model
from steerkit._io import write_json
from steerkit.activations import extract_activations
from steerkit.concepts import list_concepts
from steerkit.diagnostics.cross_model import compare_similarity, concept_similarity, depth_layer
from steerkit.lm import generate
from steerkit.lm.interventions import AddVector
from steerkit.steering import AfterTokens, ConditionalSteering, Phase, SteeringSchedule, compose, generate_scheduled

KEYWORDS = {
    "maritime": ["ship", "ships", "sea", "sail", "sailing", "ocean", "harbor", "harbour", "anchor", "captain", "crew",
                 "boat", "boats", "waves", "tide", "deck", "port", "navy", "voyage", "sailor", "sailors"],
    "culinary": ["cook", "cooking", "recipe", "bake", "baking", "flour", "oven", "butter", "salt", "pan", "dish",
                 "flavor", "flavour", "spice", "spices", "sauce", "kitchen", "chef", "taste", "meal", "ingredients"],
}
DOMAINS = ("maritime", "culinary")


def concept_vectors(lm, name: str, n_questions: int) -> np.ndarray:
    """``(L + 1, d)`` mean prompt_last difference, positive minus negative instruction."""
    concept = load_concept(name)
    questions = concept.extraction_questions[:n_questions]
    pos = [lm.chat_prompt(q, pair.pos, role="user") for q in questions for pair in concept.instruction_pairs]
    neg = [lm.chat_prompt(q, pair.neg, role="user") for q in questions for pair in concept.instruction_pairs]
    acts = extract_activations(lm, pos + neg)["prompt_last"]
    return acts[: len(pos)].mean(0) - acts[len(pos):].mean(0)


def keyword_hits(text: str, domain: str) -> int:
    return len(re.findall(r"\b(?:" + "|".join(KEYWORDS[domain]) + r")\b", text, re.IGNORECASE))


def relevance(answers: list[str]) -> dict:
    hits = {d: [keyword_hits(a, d) for a in answers] for d in DOMAINS}
    return {**{f"{d}_hits_per_answer": float(np.mean(h)) for d, h in hits.items()},
            "share_hitting_both": float(np.mean([hits[DOMAINS[0]][i] > 0 and hits[DOMAINS[1]][i] > 0
                                                 for i in range(len(answers))]))}


def composition_vs_switching(lm, vectors: dict, args) -> dict:
    layer = depth_layer(lm.n_blocks + 1, args.depth)
    unit = {d: vectors[d][layer] / np.linalg.norm(vectors[d][layer]) for d in DOMAINS}
    scale = args.alpha * float(np.mean([np.linalg.norm(v[layer]) for v in vectors.values()]))
    sea, food = (load_concept(d).evaluation_questions[: args.n_questions] for d in DOMAINS)
    prompts = [lm.chat_prompt(f"{a} Then: {b}") for a, b in zip(sea, food)]
    added = compose([unit[d] for d in DOMAINS], [scale, scale], site=layer)
    schedule = SteeringSchedule([
        Phase([AddVector(unit["maritime"], site=layer, coefficient=scale)], until=AfterTokens(args.max_new_tokens // 2),
              name="maritime"),
        Phase([AddVector(unit["culinary"], site=layer, coefficient=scale)], name="culinary"),
    ])
    kwargs = {"max_new_tokens": args.max_new_tokens, "batch_size": args.batch_size}
    answers = {
        "unsteered": generate(lm, prompts, **kwargs),
        "composition": generate(lm, prompts, interventions=[[added]] * len(prompts), **kwargs),
        "switching": generate_scheduled(lm, prompts, schedule, **kwargs),
    }
    return {"layer": layer, "coefficient": scale, "n_prompts": len(prompts),
            "variants": {name: relevance(a) for name, a in answers.items()},
            "examples": {name: a[0] for name, a in answers.items()}}


def cast(lm, vectors: dict, args) -> dict:
    layer = depth_layer(lm.n_blocks + 1, args.depth)
    questions = {d: load_concept(d).extraction_questions for d in DOMAINS}
    half = {d: len(q) // 2 for d, q in questions.items()}
    train = [q for d in DOMAINS for q in questions[d][: half[d]]]
    test = [q for d in DOMAINS for q in questions[d][half[d]:]]
    y_train = [int(d == "maritime") for d in DOMAINS for _ in questions[d][: half[d]]]
    y_test = [int(d == "maritime") for d in DOMAINS for _ in questions[d][half[d]:]]
    behaviour = AddVector(vectors["maritime"][layer], site=layer, coefficient=args.alpha)
    steering = ConditionalSteering(lm, layer, [behaviour]).fit([lm.chat_prompt(q) for q in train], y_train)
    applied = steering.applies([lm.chat_prompt(q) for q in test]).astype(int)
    return {"layer": layer, "n_train": len(train), "n_test": len(test),
            "precision": float(precision_score(y_test, applied, zero_division=0)),
            "recall": float(recall_score(y_test, applied, zero_division=0)),
            "threshold": steering.detector_.threshold_}


def cross_model(smollm_vectors: dict, args) -> dict:
    gemma = load_model("gemma3-270m")
    names = list(smollm_vectors)
    gemma_vectors = np.stack([concept_vectors(gemma, n, args.n_questions) for n in names])
    a = concept_similarity(np.stack([smollm_vectors[n] for n in names]), depth=args.depth)
    b = concept_similarity(gemma_vectors, depth=args.depth)
    result = compare_similarity(a, b, n_permutations=9999)
    return {"concepts": names, **result._asdict()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-questions", type=int, default=20, help="questions per concept (vectors, prompt set)")
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--depth", type=float, default=0.6, help="relative depth of the steering/condition layer")
    parser.add_argument("--alpha", type=float, default=4.0, help="strength in units of the vectors' mean norm")
    parser.add_argument("--concepts", type=int, default=None, help="how many bundled concepts for the geometry")
    parser.add_argument("--gemma", action="store_true", help="also compare geometry with Gemma-3-270M")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "composition.json"))
    args = parser.parse_args()

    start = time.perf_counter()
    lm = load_model()
    names = list(dict.fromkeys([*DOMAINS, *list_concepts()]))[: args.concepts]
    vectors = {n: concept_vectors(lm, n, args.n_questions) for n in names}
    results = {"model": lm.name, "settings": vars(args),
               "composition_vs_switching": composition_vs_switching(lm, vectors, args),
               "cast": cast(lm, vectors, args)}
    if args.gemma:
        results["cross_model"] = cross_model(vectors, args)
    results["seconds"] = time.perf_counter() - start
    write_json(args.out, results)
    for name, value in results["composition_vs_switching"]["variants"].items():
        print(f"{name:12s} {value}")
    print("CAST", {k: results["cast"][k] for k in ("precision", "recall", "n_test")})
    if "cross_model" in results:
        print("cross-model", {k: results["cross_model"][k] for k in ("spearman", "pearson", "p_value")})
    print(f"wrote {args.out} ({results['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
