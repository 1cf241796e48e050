import pickle

import numpy as np
import pytest
from sklearn.base import clone

from steerkit.concepts import load_concept
from steerkit.metrics import LikelihoodCoherence
from steerkit.metrics.coherence import loglik_score, repeated_ngram_share

DEGENERATE = [
    "aye aye aye aye aye aye aye aye aye aye aye aye aye aye aye aye aye aye aye aye",
    "the the the the the the the the the the the the the the the the",
    "-nigh-nigh-nigh-nigh-nigh-nigh-nigh-nigh-nigh-nigh-nigh-nigh-nigh-",
    "Awadadadadadadadadadadadadadadadadadadadadadadadadadadadadadad",
    "qwz vbn plor kasd fjwe mnbv trew oiuy lkjh zxcv",
]


@pytest.fixture(scope="module")
def coherence(smollm):
    return LikelihoodCoherence(smollm, batch_size=4)


@pytest.fixture(scope="module")
def fluent(smollm):
    """The embedded model's own answers to bundled evaluation questions of four concepts."""
    questions = [load_concept(name).evaluation_questions[0] for name in ("pirate", "formal", "culinary", "astronomy")]
    return questions, smollm.generate(questions, max_new_tokens=40, batch_size=4)


def test_repeated_ngram_share():
    assert repeated_ngram_share([1, 2, 3, 4, 5, 6], n=2) == 0.0
    assert repeated_ngram_share([7] * 10, n=4) == pytest.approx(1 - 1 / 7)
    assert repeated_ngram_share([1, 2], n=4) == 0.0


def test_loglik_score_is_monotone_on_0_100():
    scores = loglik_score([-0.5, -3.0, -5.0, -8.0, np.nan])
    assert scores[2] == pytest.approx(50.0) and np.isnan(scores[4])
    assert 100 > scores[0] > scores[1] > scores[2] > scores[3] > 0


def test_fluent_answers_score_high_and_degenerate_text_low(coherence, fluent):
    questions, answers = fluent
    fluent_scores = coherence.score(questions, answers)
    degenerate_scores = coherence.score(questions + questions[:1], DEGENERATE)
    assert np.all(fluent_scores >= 70), (fluent_scores, answers)
    assert np.all(degenerate_scores <= 30), degenerate_scores
    assert fluent_scores.min() > degenerate_scores.max()


def test_repetition_term_catches_likely_loops(coherence, fluent):
    questions, _ = fluent
    # the model finds "aye aye aye ..." likely: likelihood alone would call it fluent
    loop = ["aye " * 30]
    assert coherence.mean_log_likelihood(questions[:1], loop)[0] > -2.0
    assert coherence.score(questions[:1], loop)[0] < 20
    unpenalised = clone(coherence).set_params(repetition_weight=0.0)
    assert unpenalised.score(questions[:1], loop)[0] > 90


def test_empty_responses_are_missing(coherence, fluent):
    questions, answers = fluent
    scores = coherence.score(questions[:3], ["", "   ", answers[2]])
    assert np.isnan(scores[:2]).all() and not np.isnan(scores[2])


def test_batched_equals_single(coherence, fluent):
    questions, answers = fluent
    texts = answers + DEGENERATE[:2]
    qs = questions + questions[:2]
    batched = coherence.score(qs, texts)
    single = np.array([coherence.score([q], [t])[0] for q, t in zip(qs, texts)])
    np.testing.assert_allclose(batched, single, atol=1e-3)


def test_pickles_with_model_by_reference(coherence):
    blob = pickle.dumps(coherence)
    assert len(blob) < 10_000
    restored = pickle.loads(blob)  # the model is re-loaded by name (once per process)
    assert restored.model.name == coherence.model.name and restored.get_params()["ngram"] == coherence.ngram
