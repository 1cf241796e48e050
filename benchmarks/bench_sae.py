"""Sparse autoencoders on the embedded model: the measured section of issue 15 (seed 001's SAE study).

1. Streams per-token activations at ``--layer`` over the offline corpus (bundled concepts'
   questions plus the model's own sampled answers) and trains a ReLU SAE (8x expansion) at each
   L1 coefficient of ``--l1`` (seed 001: 0.005 and 0.05): throughput (tokens/s) and quality (MSE,
   explained variance, L0, dead share on the first shard; next-token loss with the
   reconstruction spliced in).
2. For each concept and SAE: diffusion of the contrastive (PV) vector, top-``--k`` features by
   contrastive activation and by output influence (targets: the PV vector's logit-lens tokens),
   and their overlap (seed 001: diffusion 47-59 %, overlap 0-4 of 20).
3. Held-out utility (EmbeddingJudge + LikelihoodCoherence, as in ``steerkit run``) on the
   concept's evaluation questions of: PV, SAEFeatureSteerer by activation and by influence (at
   ``--coefficient``), the prompting baseline and the unsteered model.
4. Probe vs SAE: ROC AUC of a raw-activation probe, an SAE-feature probe and the PV projection on
   held-out questions and against the next concept's samples (seed 004's negative result).

Full run: python benchmarks/bench_sae.py   (not run yet; estimated 2-3 hours on 2 CPU cores)
Tiny check: python benchmarks/bench_sae.py --n-questions 2 --n-sampled 4 --steps 20 --n-eval 2
            --max-new-tokens 12 --out /tmp/bench_sae.json   (about 15 minutes on 2 shared CPU cores)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np

from steerkit import load_concept, load_model
from steerkit._io import write_json
from steerkit.activations import build_activation_set, generate_contrastive
from steerkit.activations.streams import corpus_from_concepts, write_activation_stream
from steerkit.estimators import PVSteerer
from steerkit.estimators.pv import class_mean_difference
from steerkit.estimators.sae_feature import SAEFeatureSteerer, top_indices
from steerkit.lm import Site
from steerkit.metrics import EmbeddingJudge, LikelihoodCoherence
from steerkit.sae import SparseAutoencoder
from steerkit.sae.analysis import (concept_diffusion, concept_target_tokens, feature_influence, feature_overlap,
                                   sae_layer_samples, top_features_by_activation)
from steerkit.sae.metrics import sae_metrics, spliced_loss
from steerkit.sae.probes import probe_comparison
from steerkit.steering import PromptSteerer, SteeredModel


def train_saes(lm, stream, texts, args) -> dict:
    """One fitted SAE per L1 coefficient, with its throughput and quality."""
    sample, _ = stream.read_shard(0)
    trained = {}
    for l1 in args.l1:
        sae = SparseAutoencoder(expansion=8, l1_coefficient=l1, n_steps=args.steps, batch_size=args.sae_batch,
                                progress=False)
        start = time.perf_counter()
        sae.fit(stream)
        seconds = time.perf_counter() - start
        metrics = {**sae_metrics(sae, sample), **spliced_loss(lm, sae, stream.site, texts[:16]),
                   "tokens_per_second": sae.history_["tokens"][-1] / seconds, "train_seconds": seconds}
        print(f"L1 {l1}: " + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()), flush=True)
        trained[l1] = (sae, metrics)
    return trained


def feature_study(lm, sae, activations, k: int) -> tuple[dict, np.ndarray]:
    """Diffusion, both top-k sets and their overlap; also the influence scores (F,)."""
    pv = class_mean_difference(*sae_layer_samples(sae, activations))
    influence = feature_influence(sae, lm, concept_target_tokens(lm, pv), progress=False)
    by_activation = top_features_by_activation(sae, activations, k)
    by_influence = top_indices(influence, k)
    return {"diffusion": concept_diffusion(sae, activations), "top_by_activation": by_activation.tolist(),
            "top_by_influence": by_influence.tolist(), "overlap": feature_overlap(by_activation, by_influence)}, influence


def utilities(lm, concept, activations, sae, influence, args) -> dict:
    """Mean held-out utility (0-100) of each method on the concept's evaluation questions."""
    judge = EmbeddingJudge(LikelihoodCoherence(lm, batch_size=args.generation_batch)).fit_samples(activations.samples)
    questions = list(concept.evaluation_questions[: args.n_eval])
    settings = dict(max_new_tokens=args.max_new_tokens, batch_size=args.generation_batch)
    steerers = {"PV": PVSteerer(coefficient=args.coefficient),
                "SAE activation": SAEFeatureSteerer(sae, k=args.k, coefficient=args.coefficient),
                "SAE influence": SAEFeatureSteerer(sae, k=args.k, criterion="influence", influence=influence,
                                                   coefficient=args.coefficient)}
    methods = {name: SteeredModel(lm, steerer, layer=args.layer, **settings).fit(activations)
               for name, steerer in steerers.items()}
    methods["prompting"] = PromptSteerer.from_concept(lm, concept, role="user", **settings).fit()
    methods["unsteered"] = PromptSteerer(lm, None, **settings).fit()
    scores = {}
    for name, method in methods.items():
        table = judge.score_responses(questions, method.generate(questions))
        scores[name] = {column: float(table[column].mean()) for column in ("concept", "coherence", "utility")}
        print(f"{concept.name} {name}: {scores[name]}", flush=True)
    return scores


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layer", type=int, default=15)
    parser.add_argument("--concepts", nargs="+", default=["pirate", "formal", "culinary"])
    parser.add_argument("--l1", type=float, nargs="+", default=[0.005, 0.05])
    parser.add_argument("--n-questions", type=int, default=8, help="extraction questions per concept")
    parser.add_argument("--n-sampled", type=int, default=256, help="sampled answers in the SAE corpus")
    parser.add_argument("--steps", type=int, default=2000, help="SAE optimiser steps")
    parser.add_argument("--sae-batch", type=int, default=1024, help="tokens per SAE step")
    parser.add_argument("--k", type=int, default=20, help="top features (seed 001: 20)")
    parser.add_argument("--coefficient", type=float, default=4.0, help="steering strength of PV and SAE vectors")
    parser.add_argument("--n-eval", type=int, default=10, help="evaluation questions per concept")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--generation-batch", type=int, default=32)
    parser.add_argument("--out", default="benchmarks/results/sae.json")
    args = parser.parse_args(argv)

    lm = load_model()
    concepts = [load_concept(name) for name in args.concepts]
    sets = {}
    for concept in concepts:
        samples = generate_contrastive(lm, concept, n_questions=args.n_questions, max_new_tokens=24,
                                       batch_size=args.generation_batch, progress=False)
        sets[concept.name] = build_activation_set(lm, samples, concept=concept.name, progress=False)
    texts = corpus_from_concepts(lm, concepts, n_sampled=args.n_sampled, progress=False)
    with TemporaryDirectory() as folder:
        stream = write_activation_stream(lm, Site(args.layer), texts, Path(folder) / "stream", progress=False)
        print(f"{len(stream)} tokens at layer {args.layer}", flush=True)
        trained = train_saes(lm, stream, texts, args)
    results = {"layer": args.layer, "tokens": len(stream), "settings": vars(args), "saes": {}}
    for l1, (sae, metrics) in trained.items():
        entry = {"metrics": metrics, "concepts": {}}
        for index, concept in enumerate(concepts):
            study, influence = feature_study(lm, sae, sets[concept.name], args.k)
            shifted = sets[concepts[(index + 1) % len(concepts)].name] if len(concepts) > 1 else None
            study["probes"] = probe_comparison(sae, sets[concept.name], shifted).to_dict("records")
            if l1 == args.l1[0]:
                study["utility"] = utilities(lm, concept, sets[concept.name], sae, influence, args)
            print(f"L1 {l1} {concept.name}: diffusion {study['diffusion']:.3f}, overlap {study['overlap']}/{args.k}",
                  flush=True)
            entry["concepts"][concept.name] = study
        results["saes"][str(l1)] = entry
    write_json(args.out, results)
    print(args.out)


if __name__ == "__main__":
    main()
