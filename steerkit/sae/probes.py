"""Probe vs SAE: detecting a concept from raw activations, from SAE features, or by projection
on its PV direction (seed 004: SAE probes lose to linear probes out of distribution).

The concept's samples are split by question (no question in both halves). Each detector is
fitted on the training questions and scored with ROC AUC (positive = the concept's positive
instruction) on

- ``"held-out"``: the held-out questions' positive vs negative samples;
- ``"shifted"``: the held-out questions' positive samples vs every sample of another concept
  (``shifted``), a distribution none of the detectors saw.

Detectors: ``"raw probe"`` (standardised logistic regression on the activations ``(n, d)``),
``"SAE probe"`` (the same on the SAE features ``(n, F)``) and ``"PV projection"`` (the projection
``h · (mean(pos) - mean(neg))`` of the training questions, no fitted classifier).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from steerkit.estimators.pv import class_mean_difference
from steerkit.sae.analysis import sae_layer_samples

DETECTORS = ("raw probe", "SAE probe", "PV projection")


def question_split(question_ids: np.ndarray, test_size: float, seed: int) -> np.ndarray:
    """Bool mask (n,) of the samples whose question is held out (``test_size`` of the questions)."""
    questions = np.unique(question_ids)
    n_test = int(round(test_size * questions.size))
    if not 0 < n_test < questions.size:
        raise ValueError(f"test_size={test_size} holds out {n_test} of {questions.size} questions: pass a "
                         "test_size that leaves at least one question on each side")
    held_out = np.random.default_rng(seed).permutation(questions)[:n_test]
    return np.isin(question_ids, held_out)


def _probe(C: float):
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=5000))


def probe_comparison(sae, activations, shifted=None, *, position: str = "response_avg", layer: int | None = None,
                     test_size: float = 0.5, C: float = 1.0, seed: int = 0) -> pd.DataFrame:
    """ROC AUC of the three detectors on held-out questions (and on the shifted distribution).

    Parameters
    ----------
    sae : a fitted SAE at the site of ``activations``.
    activations : the concept's :class:`~steerkit.activations.ActivationSet`.
    shifted : another concept's ActivationSet (same model and site), or None.
    position, layer : which pooled activations to read; ``layer`` defaults to ``sae.site_.layer``.
    test_size : share of the questions held out. C : inverse L2 strength of both probes.
    seed : seeds the question split.

    Returns
    -------
    DataFrame with one row per (detector, evaluation): ``detector``, ``evaluation``
    (``"held-out"`` / ``"shifted"``), ``auc``, ``n_positive``, ``n_negative``.
    """
    held_out = question_split(activations.question_ids, test_size, seed)
    train_positive, train_negative = sae_layer_samples(sae, activations.subset(~held_out), position=position,
                                                       layer=layer)
    X = np.concatenate([train_positive, train_negative])
    y = np.r_[np.ones(len(train_positive)), np.zeros(len(train_negative))]
    test_positive, test_negative = sae_layer_samples(sae, activations.subset(held_out), position=position, layer=layer)
    evaluations = {"held-out": test_negative}
    if shifted is not None:
        evaluations["shifted"] = np.concatenate(sae_layer_samples(sae, shifted, position=position, layer=layer))
    raw = _probe(C).fit(X, y)
    features = _probe(C).fit(sae.transform(X), y)
    direction = class_mean_difference(train_positive, train_negative)
    scorers = {
        "raw probe": raw.decision_function,
        "SAE probe": lambda A: features.decision_function(sae.transform(A)),
        "PV projection": lambda A: A @ direction,
    }
    rows = []
    for detector in DETECTORS:
        for evaluation, negatives in evaluations.items():
            scores = np.r_[scorers[detector](test_positive), scorers[detector](negatives)]
            labels = np.r_[np.ones(len(test_positive)), np.zeros(len(negatives))]
            rows.append({"detector": detector, "evaluation": evaluation, "auc": float(roc_auc_score(labels, scores)),
                         "n_positive": len(test_positive), "n_negative": len(negatives)})
    return pd.DataFrame(rows)
