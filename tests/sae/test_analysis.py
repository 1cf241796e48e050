import numpy as np
import pytest
import torch

from steerkit.activations import ActivationSet
from steerkit.sae.analysis import (concept_diffusion, diffusion, feature_influence, feature_overlap,
                                   top_features_by_activation, top_features_by_influence)
from tests.sae.hand_built_sae import hand_built_sae

CONCEPT_FEATURE, LAYER = 5, 2


def planted_concept(sae, n_questions=12, n_layers=4, strength=3.0, seed=0) -> ActivationSet:
    """Positive samples = negative-like noise + ``strength`` * the concept feature's decoder row at LAYER."""
    rng = np.random.default_rng(seed)
    d = sae.W_dec_.shape[1]
    X = rng.normal(scale=0.3, size=(2 * n_questions, n_layers, d)).astype(np.float32)
    y = np.tile([1, 0], n_questions)
    X[y == 1, LAYER] += strength * sae.W_dec_[CONCEPT_FEATURE]
    ids = np.repeat(np.arange(n_questions), 2)
    return ActivationSet({"response_avg": X}, y=y, question_ids=ids, instruction_ids=np.zeros_like(ids),
                         contrast_ids=ids, concept="planted")


def test_diffusion_counts_the_features_a_vector_activates():
    sae = hand_built_sae()
    rows = sae.W_dec_
    assert diffusion(sae, rows[3]) == 1 / 16
    assert diffusion(sae, rows[[1, 4, 9, 12]].sum(axis=0)) == 4 / 16
    assert diffusion(sae, -rows[3]) == 0.0
    with pytest.raises(ValueError, match="shape"):
        diffusion(sae, rows[:2])


def test_concept_diffusion_is_the_diffusion_of_the_mean_difference_at_the_sae_layer():
    sae = hand_built_sae(layer=LAYER)
    concept = planted_concept(sae)
    X = concept.X("response_avg", LAYER)
    expected = np.mean(np.maximum(sae.W_dec_ @ (X[concept.y == 1].mean(0) - X[concept.y == 0].mean(0)), 0) > 0)
    assert concept_diffusion(sae, concept) == pytest.approx(expected)


def test_the_planted_concept_feature_ranks_first_by_contrastive_activation():
    sae = hand_built_sae(layer=LAYER)
    top = top_features_by_activation(sae, planted_concept(sae), k=5)
    assert top.shape == (5,) and top[0] == CONCEPT_FEATURE
    # at another layer there is no concept: the feature is not singled out
    other = top_features_by_activation(sae, planted_concept(sae), k=1, layer=1)
    assert other[0] != CONCEPT_FEATURE


def _hand_influence(sae, lm, targets=None):
    """Decoder rows through the tiny Llama's RMSNorm and lm_head, by hand."""
    norm, head = lm.model.model.norm, lm.model.lm_head.weight.detach().double().numpy()
    rows = sae.W_dec_.astype(np.float64)
    normed = rows / np.sqrt((rows**2).mean(1, keepdims=True) + norm.variance_epsilon) * norm.weight.detach().double().numpy()
    logits = normed @ head.T
    centred = logits - logits.mean(1, keepdims=True)
    return centred.max(1) if targets is None else centred[:, targets].mean(1)


def _logits_of(sae, lm, feature):
    norm, head = lm.model.model.norm, lm.model.lm_head.weight.detach().double().numpy()
    row = sae.W_dec_[feature].astype(np.float64)
    return (row / np.sqrt((row**2).mean() + norm.variance_epsilon) * norm.weight.detach().double().numpy()) @ head.T


def test_influence_equals_a_hand_computation_through_norm_and_unembedding(tiny_llama):
    sae = hand_built_sae(d=tiny_llama.hidden_size)
    original = tiny_llama.model.model.norm.weight.detach().clone()
    with torch.no_grad():
        tiny_llama.model.model.norm.weight.copy_(torch.linspace(0.5, 1.5, tiny_llama.hidden_size))
    try:
        np.testing.assert_allclose(feature_influence(sae, tiny_llama, batch_size=5, progress=False),
                                   _hand_influence(sae, tiny_llama), rtol=1e-4, atol=1e-5)
        targets = [7, 100, 2048]
        scores = feature_influence(sae, tiny_llama, targets, progress=False)
        np.testing.assert_allclose(scores, _hand_influence(sae, tiny_llama, targets), rtol=1e-4, atol=1e-5)
        top = top_features_by_influence(sae, tiny_llama, k=3, target_tokens=targets, n_tokens=4, progress=False)
        assert [row["feature"] for row in top] == np.argsort(-scores, kind="stable")[:3].tolist()
        best_tokens = np.argsort(-_logits_of(sae, tiny_llama, top[0]["feature"]), kind="stable")[:4]
        assert top[0]["tokens"] == [tiny_llama.tokenizer.decode([int(t)]) for t in best_tokens]
    finally:
        with torch.no_grad():
            tiny_llama.model.model.norm.weight.copy_(original)


def test_influence_rejects_token_ids_outside_the_vocabulary(tiny_llama):
    with pytest.raises(ValueError, match="target_tokens"):
        feature_influence(hand_built_sae(), tiny_llama, [len(tiny_llama.tokenizer)], progress=False)


def test_feature_overlap_is_the_size_of_the_intersection():
    assert feature_overlap([1, 2, 3, 4], np.array([4, 9, 1])) == 2
    assert feature_overlap([1, 2], [3]) == 0
