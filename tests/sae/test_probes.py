import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from steerkit.sae.probes import probe_comparison, question_split
from tests.sae.hand_built_sae import hand_built_sae
from tests.sae.test_analysis import LAYER, planted_concept


def test_table_has_every_detector_and_evaluation_and_pv_auc_matches_a_hand_computation():
    sae = hand_built_sae(layer=LAYER)
    concept, other = planted_concept(sae, n_questions=16, strength=0.4), planted_concept(sae, seed=1, strength=0.0)
    table = probe_comparison(sae, concept, other, test_size=0.5, seed=3)
    assert set(zip(table.detector, table.evaluation)) == {
        (d, e) for d in ("raw probe", "SAE probe", "PV projection") for e in ("held-out", "shifted")}
    held_out = question_split(concept.question_ids, 0.5, 3)
    X, y = concept.X("response_avg", LAYER), concept.y
    train, test = ~held_out, held_out
    direction = X[train & (y == 1)].mean(0) - X[train & (y == 0)].mean(0)
    expected = roc_auc_score(y[test], X[test] @ direction)
    pv = table.set_index(["detector", "evaluation"]).loc[("PV projection", "held-out")]
    assert pv.auc == pytest.approx(expected)
    assert (pv.n_positive, pv.n_negative) == (8, 8)
    shifted = table.set_index(["detector", "evaluation"]).loc[("PV projection", "shifted")]
    assert shifted.n_negative == len(other)


def test_a_clearly_planted_concept_is_detected_by_every_detector():
    sae = hand_built_sae(layer=LAYER)
    concept, other = planted_concept(sae, n_questions=16), planted_concept(sae, seed=1, strength=0.0)
    table = probe_comparison(sae, concept, other).set_index("detector")
    np.testing.assert_allclose(table.loc[["raw probe", "PV projection"], "auc"], 1.0)
    assert (table.loc["SAE probe", "auc"] > 0.9).all()


def test_question_split_holds_out_whole_questions_and_refuses_empty_sides():
    ids = np.repeat(np.arange(6), 2)
    mask = question_split(ids, 0.5, 0)
    assert mask.sum() == 6 and all(len(set(mask[ids == q])) == 1 for q in range(6))
    with pytest.raises(ValueError, match="test_size"):
        question_split(ids, 0.01, 0)
