"""A scikit-learn Pipeline over activation arrays, with contrast pairs routed as metadata.

Shows:
- a ``Pipeline`` whose first step selects one layer of the ``(n, L + 1, d)`` activations
  (``FunctionTransformer(np.take, ...)``) and whose last step is a steerer;
- scikit-learn metadata routing: ``set_fit_request(contrast_ids=True, instruction_ids=True)``
  tells the pipeline to hand the pairing ids to the steerer's ``fit``;
- the fitted pipeline as a probe: ``decision_function`` is the projection on the steering
  direction, scored by ROC AUC on held-out questions, then ``cross_val_score`` over question
  groups with the ids routed through ``params=``.

Do not put a ``StandardScaler`` (or PCA, or any rescaling) before a steerer: the vector would
then live in standardised units, not in the residual stream, so it could not be added to the
model's activations, and ``transform`` would no longer return activations.

Run:  python examples/pipeline.py --concept formal
Takes about 1 minute on an idle 2-core CPU with the embedded model (6 extraction questions);
pass ``--activations steerkit-out/formal/activations.safetensors`` to reuse a file written by
``steerkit extract`` (a few seconds).
"""

from __future__ import annotations

import argparse

import numpy as np
import sklearn
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from steerkit import (
    ActivationSet,
    ClusterSteerer,
    PVSteerer,
    UnitMeanSteerer,
    build_activation_set,
    generate_contrastive,
    load_concept,
    load_model,
)

STEERERS = {"pv": PVSteerer, "unit_mean": UnitMeanSteerer, "cluster": ClusterSteerer}


def load_activations(args) -> ActivationSet:
    if args.activations:
        return ActivationSet.load(args.activations)
    lm = load_model(args.model)
    concept = load_concept(args.concept)
    samples = generate_contrastive(lm, concept, n_questions=args.n_questions, max_new_tokens=args.max_new_tokens,
                                   progress=False)
    return build_activation_set(lm, samples, concept=concept.name, progress=False)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model alias, .gguf, folder or HF id (default: embedded SmolLM2)")
    parser.add_argument("--concept", default="formal", help="bundled concept name or concept JSON file")
    parser.add_argument("--activations", default=None, help="an activations.safetensors file (skips extraction)")
    parser.add_argument("--steerer", choices=sorted(STEERERS), default="cluster")
    parser.add_argument("--layer", type=int, default=None, help="layer to read (default: 60%% of the depth)")
    parser.add_argument("--n-questions", type=int, default=6, help="extraction questions (at least 2)")
    parser.add_argument("--max-new-tokens", type=int, default=32, help="answer length in tokens")
    args = parser.parse_args(argv)

    acts = load_activations(args)
    layer = args.layer if args.layer is not None else round(0.6 * (acts.n_layers - 1))
    X, y, metadata = acts.steerer_inputs("response_avg")  # X: (n, L + 1, d); metadata: contrast/instruction ids

    # Hold out whole questions, so the probe is tested on contexts it has never seen.
    questions = np.unique(acts.question_ids)
    train = np.isin(acts.question_ids, questions[: max(1, len(questions) // 2)])

    # Routing is scoped here; sklearn.set_config(enable_metadata_routing=True) switches it on globally.
    with sklearn.config_context(enable_metadata_routing=True):
        steerer = STEERERS[args.steerer](coefficient=4.0).set_fit_request(contrast_ids=True, instruction_ids=True)
        pipe = make_pipeline(FunctionTransformer(np.take, kw_args={"indices": layer, "axis": 1}), steerer)
        pipe.fit(X[train], y[train], **{name: ids[train] for name, ids in metadata.items()})

        projection = pipe.decision_function(X[~train])  # (n_test,), activation units
        steered = pipe.transform(X[~train])  # (n_test, d): layer activations + 4 * vector_
        print(f"{args.steerer} steerer at layer {layer} of {acts}")
        print(f"held-out ROC AUC of the projection: {roc_auc_score(y[~train], projection):.3f}")
        print(f"transform: {X[~train].shape} -> {steered.shape}; |vector_| = {np.linalg.norm(pipe[-1].vector_):.2f}")

        # The same through cross_val_score: ids and groups travel in params=, one fold per question group.
        n_folds = min(3, len(questions))
        scores = cross_val_score(pipe, X, y, cv=GroupKFold(n_folds), scoring="roc_auc",
                                 params={**metadata, "groups": acts.question_ids})
        print(f"cross-validated ROC AUC over {n_folds} question folds: " + " ".join(f"{s:.3f}" for s in scores))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
