import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.metrics import roc_auc_score

from steerkit.metrics import RESPONSE_COLUMNS, EmbeddingJudge, LikelihoodCoherence


@pytest.fixture(scope="module")
def judge(held_out):
    train, _ = held_out
    return EmbeddingJudge().fit_samples(train)


def test_ranks_held_out_positive_answers_above_negative_ones(judge, held_out, record_property):
    _, test = held_out
    scores = judge.concept_scores(test["question"], test["response"])
    assert np.all((scores >= 0) & (scores <= 100))
    auc = roc_auc_score(test["y"], scores)
    record_property("embedding_judge_auc", auc)
    assert auc > 0.8


def test_without_coherence_utility_is_the_concept_score(judge):
    questions = ["How do I keep my houseplants healthy?"] * 3
    table = judge.score_responses(questions, ["Thou must water thy plants, good sir.", "", "Water them weekly."])
    assert tuple(table.columns) == RESPONSE_COLUMNS
    assert table["coherence"].isna().all()
    assert np.isnan(table.loc[1, "concept"]) and np.isnan(table.loc[1, "utility"])
    np.testing.assert_array_equal(table["utility"], table["concept"])
    assert table.loc[0, "concept"] > table.loc[2, "concept"]


def test_with_likelihood_coherence(judge, smollm):
    with_coherence = clone(judge).set_params(coherence=LikelihoodCoherence(smollm))
    train_texts = ["Prithee, hark!", "Hello there.", "Thou art kind.", "Thanks a lot."]
    with_coherence.fit(train_texts, [1, 0, 1, 0])
    table = with_coherence.score_responses(["Why is the sky blue?"] * 2, ["The sky is blue because of scattering.", ""])
    assert 0 <= table.loc[0, "coherence"] <= 100 and np.isnan(table.loc[1, "coherence"])
    assert table.loc[0, "utility"] == pytest.approx((table.loc[0, "concept"] + table.loc[0, "coherence"]) / 2)
    assert with_coherence.coherence.model is smollm  # clone shares the language model


def test_pickle_round_trip_gives_identical_scores(judge, held_out):
    _, test = held_out
    restored = pickle.loads(pickle.dumps(judge))
    np.testing.assert_array_equal(
        restored.concept_scores(test["question"], test["response"]),
        judge.concept_scores(test["question"], test["response"]),
    )


def test_fit_validates_labels_and_lengths():
    with pytest.raises(ValueError, match="both 0"):
        EmbeddingJudge().fit(["a", "b"], [1, 1])
    with pytest.raises(ValueError, match="2 texts but 3 labels"):
        EmbeddingJudge().fit(["a", "b"], [1, 0, 1])
    with pytest.raises(Exception, match="not fitted"):
        EmbeddingJudge().concept_scores(["q"], ["a"])
