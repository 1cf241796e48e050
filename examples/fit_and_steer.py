"""Fit the three GRACE constructions on a concept and compare steered answers.

Run: python examples/fit_and_steer.py [--concept pirate] [--layer 18] [--coefficient 4]
(about a minute on a 2-core CPU with the embedded model).
"""

import argparse

from steerkit import (
    ClusterSteerer,
    PVSteerer,
    SteeredModel,
    UnitMeanSteerer,
    build_activation_set,
    generate_contrastive,
    load_concept,
    load_model,
)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--concept", default="pirate")
    parser.add_argument("--model", default=None, help="default: the embedded SmolLM2-135M-Instruct")
    parser.add_argument("--layer", type=int, default=18)
    parser.add_argument("--coefficient", type=float, default=4.0)
    parser.add_argument("--n-questions", type=int, default=6)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    args = parser.parse_args(argv)

    lm = load_model(args.model)
    concept = load_concept(args.concept)
    samples = generate_contrastive(lm, concept, n_questions=args.n_questions, max_new_tokens=args.max_new_tokens)
    acts = build_activation_set(lm, samples, concept=concept.name)
    questions = list(concept.evaluation_questions[:2])
    print("unsteered:", lm.generate(questions, max_new_tokens=args.max_new_tokens))
    for steerer in (PVSteerer(), UnitMeanSteerer(), ClusterSteerer()):
        steerer.set_params(coefficient=args.coefficient)
        model = SteeredModel(lm, steerer, layer=args.layer, max_new_tokens=args.max_new_tokens).fit(acts)
        print(f"{type(steerer).__name__}:", model.generate(questions))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
