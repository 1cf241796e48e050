"""``steerkit sae``: train a sparse autoencoder at one site (``train``) and analyse a concept's
features with it (``features``)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ._options import _add_model_options, _finite_float, _positive_int

N_LOSS_TEXTS = 16
"""Corpus texts on which ``train`` measures the next-token loss with the SAE spliced in."""


def _cmd_train(args) -> int:
    from steerkit._io import write_json
    from steerkit.activations.streams import corpus_from_concepts, read_texts, write_activation_stream
    from steerkit.concepts import list_concepts, load_concept
    from steerkit.lm import Site
    from steerkit.sae import SparseAutoencoder
    from steerkit.sae.files import save_sae
    from steerkit.sae.metrics import sae_metrics, spliced_loss

    from . import _inputs

    lm = _inputs._load_model(args, args.model)
    site = Site(args.layer, args.component)
    out = Path(args.out) if args.out else Path("steerkit-out") / "sae" / f"layer_{site}"
    if args.corpus:
        texts = read_texts(args.corpus)
    else:
        concepts = [load_concept(name) for name in (args.concepts or list_concepts())]
        texts = corpus_from_concepts(lm, concepts, n_sampled=args.n_sampled, progress=not args.quiet)
    stream = write_activation_stream(lm, site, texts, out / "stream", progress=not args.quiet)
    sae = SparseAutoencoder(expansion=args.expansion, kind=args.kind, l1_coefficient=args.l1, k=args.k,
                            batch_size=args.sae_batch_size, n_steps=args.steps, n_epochs=args.epochs,
                            seed=args.seed, progress=not args.quiet)
    start = time.perf_counter()
    sae.fit(stream)
    seconds = time.perf_counter() - start
    sae.model_name_ = lm.name
    path = save_sae(out / "sae", sae)
    sample, _ = stream.read_shard(0)
    metrics = {**sae_metrics(sae, sample), **spliced_loss(lm, sae, site, texts[:N_LOSS_TEXTS]),
               "tokens": len(stream), "train_seconds": seconds,
               "tokens_per_second": sae.history_["tokens"][-1] / seconds if sae.history_["tokens"] else 0.0}
    write_json(out / "metrics.json", metrics)
    for name, value in metrics.items():
        print(f"{name:>20}: {value:.4g}", file=sys.stderr)
    print(path)
    return 0


def _cmd_features(args) -> int:
    from steerkit._io import write_json
    from steerkit.activations import ActivationSet
    from steerkit.estimators.pv import class_mean_difference
    from steerkit.sae.analysis import (concept_diffusion, concept_target_tokens, feature_overlap,
                                       logit_lens_tokens, sae_layer_samples, top_features_by_activation,
                                       top_features_by_influence)
    from steerkit.sae.files import load_sae

    from . import _inputs
    from .diagnose import _activation_file

    activations = ActivationSet.load(_activation_file(args.concept))
    sae = load_sae(args.sae)
    if sae.site_ is None:
        raise ValueError(f"{args.sae} records no hook_name (site): re-save the SAE with its site")
    lm = _inputs._load_model(args, args.model or activations.model_name)
    k = min(args.k, sae.n_features_)
    by_activation = top_features_by_activation(sae, activations, k, position=args.position)
    pv = class_mean_difference(*sae_layer_samples(sae, activations, position=args.position))
    targets = concept_target_tokens(lm, pv, args.n_target_tokens)
    by_influence = top_features_by_influence(sae, lm, k, targets, n_tokens=args.n_tokens, progress=not args.quiet)
    influence_ids = [row["feature"] for row in by_influence]
    result = {
        "concept": activations.concept, "model": activations.model_name, "site": str(sae.site_),
        "n_features": sae.n_features_, "k": k, "position": args.position,
        "diffusion": concept_diffusion(sae, activations, position=args.position),
        "target_tokens": [lm.tokenizer.decode([int(t)]) for t in targets],
        "top_by_activation": [{"feature": int(f), "tokens": tokens} for f, tokens in
                              zip(by_activation, logit_lens_tokens(sae, lm, by_activation, args.n_tokens))],
        "top_by_influence": by_influence,
        "overlap": feature_overlap(by_activation, influence_ids),
    }
    out = Path(args.out) if args.out else Path("steerkit-out") / "sae" / f"{activations.concept or 'concept'}_features.json"
    write_json(out, result)
    print(f"diffusion {100 * result['diffusion']:.1f} % of {sae.n_features_} features; top-{k} overlap "
          f"(activation vs influence) {result['overlap']}/{k}", file=sys.stderr)
    print(out)
    return 0


def _cmd_sae(args) -> int:
    return {"train": _cmd_train, "features": _cmd_features}[args.sae_command](args)


def add_parser(commands) -> None:
    """Register ``steerkit sae train`` and ``steerkit sae features`` on ``commands``."""
    sae = commands.add_parser("sae", help="sparse autoencoders: train one at a layer, analyse a concept's features",
                              description="Train a sparse autoencoder on per-token activations (SAELens format) "
                              "and decompose a concept's contrastive activations into its features.")
    sae.set_defaults(func=_cmd_sae)
    sub = sae.add_subparsers(dest="sae_command", required=True, metavar="SUBCOMMAND")

    train = sub.add_parser("train", help="stream activations at --layer over a corpus, fit an SAE, save it",
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    train.add_argument("--layer", type=int, required=True, help="layer (0 = embeddings, l = output of block l)")
    train.add_argument("--component", default="residual", choices=["residual", "attn", "mlp"], help="site component")
    train.add_argument("--corpus", default=None, help="text file, one text per line (default: bundled concepts' "
                       "questions plus the model's own sampled answers)")
    train.add_argument("--concepts", nargs="+", default=None, help="bundled concepts of the default corpus (default: all)")
    train.add_argument("--n-sampled", type=_positive_int, default=64, help="sampled answers in the default corpus")
    train.add_argument("--kind", default="relu", choices=["relu", "topk", "jumprelu"], help="activation function")
    train.add_argument("--expansion", type=_positive_int, default=8, help="features per activation dimension")
    train.add_argument("--l1", type=_finite_float, default=0.005, help="sparsity coefficient (seed 001: 0.005, 0.05)")
    train.add_argument("--k", type=_positive_int, default=32, help="active features per token (topk)")
    train.add_argument("--steps", type=_positive_int, default=None, help="optimiser steps (default: --epochs passes)")
    train.add_argument("--epochs", type=_positive_int, default=1, help="passes over the tokens when --steps is absent")
    train.add_argument("--sae-batch-size", type=_positive_int, default=4096, help="tokens per optimiser step")
    train.add_argument("--seed", type=int, default=0, help="seed of initialisation and shuffling")
    train.add_argument("--out", default=None, help="output folder (default: steerkit-out/sae/layer_<site>): "
                       "stream/, sae/ (SAELens format), metrics.json")
    train.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_model_options(train)

    features = sub.add_parser("features", help="diffusion, top features by activation and influence, overlap",
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    features.add_argument("concept", metavar="CONCEPT",
                          help="the concept's activation file (or its folder) written by `steerkit extract`")
    features.add_argument("--sae", required=True, help="SAE folder (SAELens format) at one of the file's layers")
    features.add_argument("--k", type=_positive_int, default=20, help="top features per criterion (seed 001: 20)")
    features.add_argument("--position", default="response_avg", choices=["response_avg", "prompt_avg", "prompt_last"],
                          help="pooled activations to analyse")
    features.add_argument("--n-tokens", type=_positive_int, default=5, help="logit-lens tokens listed per feature")
    features.add_argument("--n-target-tokens", type=_positive_int, default=20,
                          help="influence targets: the tokens the concept's PV vector raises most")
    features.add_argument("--out", default=None, help="JSON file (default: steerkit-out/sae/<concept>_features.json)")
    features.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_model_options(features)
