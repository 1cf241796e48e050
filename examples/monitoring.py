"""Monitoring: the projection on the steering direction separates positive from negative answers.

Shows ``decision_function`` as a probe. Per layer, a steerer is fitted on the contrasts of
half of the extraction questions; the activations of the other questions' answers are
projected on its unit direction, and ROC AUC measures how well that one number tells answers
written under the positive instruction from those under the negative one (1.0 = perfectly,
0.5 = chance). Then one new text is monitored: the projection of an answer that was never in
the training data, read with ``extract_activations``.

Run:  python examples/monitoring.py --concept pirate --layers 6 12 18 24
Takes about 2 minutes on an idle 2-core CPU with the embedded model (6 extraction questions).
"""

from __future__ import annotations

import argparse

import numpy as np
from sklearn.metrics import roc_auc_score

from steerkit import PVSteerer, build_activation_set, extract_activations, generate_contrastive, load_concept, load_model


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model alias, .gguf, folder or HF id (default: embedded SmolLM2)")
    parser.add_argument("--concept", default="pirate", help="bundled concept name or concept JSON file")
    parser.add_argument("--layers", type=int, nargs="+", default=None, help="layers to probe (default: 4 spread over the depth)")
    parser.add_argument("--position", default="response_avg", choices=["response_avg", "prompt_avg", "prompt_last"])
    parser.add_argument("--n-questions", type=int, default=6, help="extraction questions (at least 2)")
    parser.add_argument("--max-new-tokens", type=int, default=32, help="answer length in tokens")
    args = parser.parse_args(argv)

    lm = load_model(args.model)
    concept = load_concept(args.concept)
    layers = args.layers or sorted({max(1, round(f * lm.n_blocks)) for f in (0.2, 0.4, 0.6, 0.8)})
    samples = generate_contrastive(lm, concept, n_questions=args.n_questions, max_new_tokens=args.max_new_tokens,
                                   progress=False)
    acts = build_activation_set(lm, samples, concept=concept.name, progress=False)

    questions = np.unique(acts.question_ids)
    train = np.isin(acts.question_ids, questions[: max(1, len(questions) // 2)])
    print(f"{acts}\nprobe fitted on {train.sum()} answers, tested on {(~train).sum()} answers to other questions")
    probes = {}
    for layer in layers:
        X = acts.X(args.position, layer)  # (n, d)
        probes[layer] = PVSteerer().fit(X[train], acts.y[train], contrast_ids=acts.contrast_ids[train])
        auc = roc_auc_score(acts.y[~train], probes[layer].decision_function(X[~train]))
        print(f"layer {layer:>3}: ROC AUC {auc:.3f}")

    # Monitor new text: project an answer the probe has never seen.
    best = layers[-1]
    question, pair = concept.evaluation_questions[0], concept.instruction_pairs[0]
    answers = [lm.generate([question], system, max_new_tokens=args.max_new_tokens)[0] for system in (pair.pos, pair.neg)]
    prompts = [lm.chat_prompt(question)] * 2  # read both answers after the plain prompt
    activations = extract_activations(lm, prompts, answers)[args.position][:, best]
    for label, answer, score in zip(("positive", "negative"), answers, probes[best].decision_function(activations)):
        print(f"layer {best} projection of a new {label} answer: {score:+.2f} | {answer[:80]!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
