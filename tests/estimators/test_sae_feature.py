import numpy as np
import pytest
from sklearn.base import clone

from steerkit.estimators.sae_feature import SAEFeatureSteerer
from tests.sae.hand_built_sae import hand_built_sae
from tests.sae.test_analysis import CONCEPT_FEATURE, LAYER, planted_concept


def _layer_samples(concept):
    return concept.X("response_avg", LAYER), concept.y


def test_activation_criterion_steers_along_the_planted_feature_at_the_pv_norm():
    sae = hand_built_sae(layer=LAYER)
    X, y = _layer_samples(planted_concept(sae))
    steerer = SAEFeatureSteerer(sae, k=1).fit(X, y)
    assert steerer.features_.tolist() == [CONCEPT_FEATURE]
    pv_norm = np.linalg.norm(X[y == 1].mean(0) - X[y == 0].mean(0))
    np.testing.assert_allclose(steerer.vector_, pv_norm * sae.W_dec_[CONCEPT_FEATURE], rtol=1e-5, atol=1e-6)
    expected = sae.transform(X[y == 1]).mean(0) - sae.transform(X[y == 0]).mean(0)
    np.testing.assert_allclose(steerer.feature_scores_, expected, rtol=1e-5, atol=1e-6)


def test_top_k_vector_is_the_uniform_mean_of_the_selected_decoder_rows():
    sae = hand_built_sae(layer=LAYER)
    X, y = _layer_samples(planted_concept(sae))
    steerer = SAEFeatureSteerer(sae, k=4).fit(X, y)
    mean = sae.W_dec_[steerer.features_].mean(0)
    np.testing.assert_allclose(steerer.direction_, mean / np.linalg.norm(mean), rtol=1e-5, atol=1e-6)
    assert steerer.features_[0] == CONCEPT_FEATURE and len(set(steerer.features_)) == 4


def test_influence_criterion_and_single_feature_select_what_they_are_given():
    sae = hand_built_sae(layer=LAYER)
    X, y = _layer_samples(planted_concept(sae))
    influence = np.zeros(16)
    influence[[11, 4, 0]] = [5.0, 6.0, 1.0]
    steerer = SAEFeatureSteerer(sae, k=2, criterion="influence", influence=influence).fit(X, y)
    assert steerer.features_.tolist() == [4, 11]
    one = SAEFeatureSteerer(sae, feature=9).fit(X, y)
    np.testing.assert_allclose(one.direction_, sae.W_dec_[9], atol=1e-6)


def test_three_d_activations_steer_only_at_the_sae_layer():
    sae = hand_built_sae(layer=LAYER)
    concept = planted_concept(sae)
    X, y, metadata = concept.steerer_inputs()
    layered = SAEFeatureSteerer(sae, k=3).fit(X, y, **metadata)
    flat = SAEFeatureSteerer(sae, k=3).fit(*_layer_samples(concept))
    np.testing.assert_allclose(layered.vector_[LAYER], flat.vector_, rtol=1e-6)
    assert not np.delete(layered.vector_, LAYER, axis=0).any()
    assert layered.n_contrasts_ == concept.n_contrasts


def test_clone_keeps_the_fitted_sae_and_the_parameters():
    sae = hand_built_sae(layer=LAYER)
    steerer = SAEFeatureSteerer(sae, k=3, criterion="activation", coefficient=2.0)
    copy = clone(steerer)
    assert copy.sae is sae and copy.get_params(deep=False) == steerer.get_params(deep=False)
    copy.set_params(k=5)
    assert copy.fit(*_layer_samples(planted_concept(sae))).features_.size == 5


@pytest.mark.parametrize("params, match", [
    (dict(k=0), "k must"), (dict(k=17), "k must"), (dict(k=3, criterion="random"), "criterion"),
    (dict(k=3, criterion="influence"), "influence="), (dict(feature=16), "feature must"),
])
def test_invalid_settings_name_the_parameter(params, match):
    sae = hand_built_sae(layer=LAYER)
    with pytest.raises(ValueError, match=match):
        SAEFeatureSteerer(sae, **params).fit(*_layer_samples(planted_concept(sae)))


def test_differences_and_a_missing_sae_are_refused():
    sae = hand_built_sae(layer=LAYER)
    X, y = _layer_samples(planted_concept(sae))
    with pytest.raises(ValueError, match="labelled samples"):
        SAEFeatureSteerer(sae, k=3).fit(X[y == 1] - X[y == 0])
    with pytest.raises(ValueError, match="fitted SAE"):
        SAEFeatureSteerer().fit(X, y)


def test_works_in_steered_model_and_grid_search(tiny_llama):
    from steerkit.metrics import make_steer_scorer
    from steerkit.model_selection import GridSearchSteer
    from steerkit.steering import SteeredModel

    sae = hand_built_sae(d=tiny_llama.hidden_size, layer=LAYER)
    concept = planted_concept(sae, n_layers=tiny_llama.n_blocks + 1)
    model = SteeredModel(tiny_llama, SAEFeatureSteerer(sae, k=1), layer=LAYER, max_new_tokens=5, batch_size=8)
    fitted = clone(model).fit(concept)
    assert fitted.steerer_.sae is sae
    np.testing.assert_allclose(fitted.vector_, fitted.steerer_.vector_[LAYER])
    judge = make_steer_scorer(lambda question, response: float(sum(map(ord, response)) % 101), name="text")
    grid = {"steerer__k": [1, 3], "steerer__coefficient": [0.0, 30.0]}
    search = GridSearchSteer(model, grid, judge, cv=2, progress=False).fit(concept, ["Hi?", "Name a ship.", "Why?", "Go."])
    assert len(search.cv_results_["params"]) == 4
    assert search.best_estimator_.steerer_.sae is sae
    questions = ["Name a ship.", "Hi?", "Why?"]
    assert fitted.generate(questions) != tiny_llama.generate(questions, max_new_tokens=5)
