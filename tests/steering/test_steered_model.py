import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone

from steerkit.estimators import PVSteerer, UnitMeanSteerer
from steerkit.steering import SteeredModel


def test_nested_params_and_clone(tiny_llama):
    model = SteeredModel(tiny_llama, PVSteerer(coefficient=2.0), layer=2)
    params = model.get_params()
    assert params["steerer__coefficient"] == 2.0 and params["layer"] == 2
    model.set_params(steerer__coefficient=5.0, layer=1)
    copy = clone(model)
    assert copy.steerer.coefficient == 5.0 and copy.layer == 1
    assert copy.model is tiny_llama and copy.steerer is not model.steerer


def test_fit_from_activation_set_uses_layer_slice(pirate_activations, smollm):
    model = SteeredModel(smollm, UnitMeanSteerer(coefficient=3.0), layer=12).fit(pirate_activations)
    direct = UnitMeanSteerer().fit(pirate_activations.differences("response_avg"))
    np.testing.assert_allclose(model.vector_, direct.vector_[12], rtol=1e-5, atol=1e-6)
    assert model.coefficient_ == 3.0


def test_generate_equals_manual_steering(pirate_activations, smollm):
    from steerkit.steering import steer

    model = SteeredModel(smollm, PVSteerer(coefficient=4.0), layer=18, max_new_tokens=12).fit(pirate_activations)
    question = ["How do I make a budget?"]
    with steer(smollm, model.vector_, 18, 4.0):
        manual = smollm.generate(question, max_new_tokens=12)
    assert model.generate(question) == manual
    assert model.predict(question).tolist() == manual


def test_prefitted_steerer_and_errors(tiny_llama):
    rng = np.random.default_rng(0)
    steerer = PVSteerer().fit(rng.normal(size=(6, 64)))
    model = SteeredModel(tiny_llama, steerer, layer=2, max_new_tokens=3)
    assert len(model.generate(["hi"])) == 1
    with pytest.raises(Exception, match="not fitted"):
        SteeredModel(tiny_llama, PVSteerer(), layer=2).generate(["hi"])
    with pytest.raises(ValueError, match="needs a layer"):
        SteeredModel(tiny_llama, steerer).generate(["hi"])
    with pytest.raises(ValueError, match="fitted on 5 layers"):
        SteeredModel(tiny_llama, PVSteerer().fit(rng.normal(size=(6, 5, 64))), layer=1).vector_


def test_pickle_round_trip_keeps_vector(tiny_llama):
    rng = np.random.default_rng(1)
    model = SteeredModel(tiny_llama, PVSteerer(), layer=1).fit(rng.normal(size=(8, 4, 64)))
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.vector_, model.vector_)


def test_model_loaded_by_name_pickles_as_a_reference(smollm):
    blob = pickle.dumps(SteeredModel(smollm, PVSteerer(), layer=3))
    assert len(blob) < 10_000  # the weights do not travel
    restored = pickle.loads(blob)
    assert restored.model.n_blocks == 30 and restored.model.load_spec == smollm.load_spec
    assert pickle.loads(blob).model.model is restored.model.model  # one torch model per process


def test_a_steerer_whose_vector_is_not_finite_is_refused_before_generating(tiny_llama):
    steerer = PVSteerer().fit(np.random.default_rng(2).normal(size=(6, 4, 64)))
    steerer.vector_[2, 0] = np.nan
    model = SteeredModel(tiny_llama, steerer, layer=2, max_new_tokens=2)
    with pytest.raises(ValueError, match="steering vector contains 1 NaN"):
        model.generate(["hi"])


def test_nested_set_params_refuses_a_non_finite_coefficient(tiny_llama):
    model = SteeredModel(tiny_llama, PVSteerer(coefficient=2.0), layer=2)
    with pytest.raises(ValueError, match="coefficient=inf"):
        model.set_params(steerer__coefficient=float("inf"))
    assert model.steerer.coefficient == 2.0


def test_interventions_steer_rows_of_one_batch_like_generate(tiny_llama):
    rng = np.random.default_rng(3)
    steerer = PVSteerer(coefficient=4.0).fit(rng.normal(size=(6, 4, 64)))
    models = [SteeredModel(tiny_llama, steerer, layer=layer, steer_positions=positions, max_new_tokens=6)
              for layer, positions in [(1, "response"), (3, "all")]]
    (added,) = models[0].interventions()
    assert added.site.layer == 1 and added.coefficient == 4.0 and added.positions == "response"
    np.testing.assert_array_equal(added.vector.numpy(), models[0].vector_.astype(np.float32))
    questions = ["hi", "What is a good hobby for a rainy day?"]
    per_row = [None] * 2 + [m.interventions() for m in models for _ in questions]
    batched = tiny_llama.generate(questions * 3, interventions=per_row, max_new_tokens=6)
    assert batched == tiny_llama.generate(questions, max_new_tokens=6) + models[0].generate(questions) + models[1].generate(questions)


def test_steer_positions_and_fit_position_names_and_deprecated_spellings(tiny_llama):
    rng = np.random.default_rng(4)
    X = rng.normal(size=(6, 4, 64))
    new = SteeredModel(tiny_llama, PVSteerer(), layer=2, steer_positions="all", fit_position="prompt_avg").fit(X)
    assert new.interventions()[0].positions == "all"
    old = SteeredModel(tiny_llama, PVSteerer(), layer=2, positions="all", position="prompt_avg")
    with pytest.warns(DeprecationWarning, match=r"\(positions=\.\.\.\) is deprecated.*steer_positions="):
        assert old.fit(X).interventions()[0].positions == "all"
    assert clone(old).get_params()["positions"] == "all"


def test_deprecated_position_still_picks_the_activations_fit_reads():
    from steerkit.activations import ActivationSet

    rng = np.random.default_rng(6)
    ids = np.repeat(np.arange(4), 2)
    data = ActivationSet({"prompt_last": rng.normal(size=(8, 4, 64)), "response_avg": rng.normal(size=(8, 4, 64))},
                         np.tile([1, 0], 4), ids, np.zeros(8), ids)
    model = SteeredModel(None, PVSteerer(), layer=3, position="prompt_last")
    with pytest.warns(DeprecationWarning, match=r"\(position=\.\.\.\) is deprecated.*fit_position="):
        model.fit(data)
    expected = SteeredModel(None, PVSteerer(), layer=3, fit_position="prompt_last").fit(data)
    np.testing.assert_array_equal(model.steerer_.vector_, expected.steerer_.vector_)
    assert not np.allclose(model.steerer_.vector_, SteeredModel(None, PVSteerer(), layer=3).fit(data).steerer_.vector_)


def test_a_sublayer_site_is_steered(tiny_llama):
    from steerkit.lm import Site, record_activations

    steerer = PVSteerer(coefficient=4.0).fit(np.random.default_rng(5).normal(size=(6, 4, 64)))
    model = SteeredModel(tiny_llama, steerer, layer=Site(2, "mlp"), max_new_tokens=6)
    assert model.interventions()[0].site == Site(2, "mlp")
    np.testing.assert_array_equal(model.vector_, steerer.vector_[2])
    ids = torch.tensor([tiny_llama.tokenizer("hi there", add_special_tokens=False)["input_ids"]])
    with torch.inference_mode(), record_activations(tiny_llama, [Site(2, "mlp")]) as plain:
        tiny_llama.model(ids)
    with torch.inference_mode(), record_activations(tiny_llama, [Site(2, "mlp")]) as rec, model.steering():
        tiny_llama.model(ids)
    delta = (rec[Site(2, "mlp")][0] - plain[Site(2, "mlp")][0])[0].numpy()
    np.testing.assert_allclose(delta[-1], 4.0 * model.vector_, atol=1e-5)  # "response": the last position
    np.testing.assert_array_equal(delta[:-1], 0)


def test_a_model_fitted_on_sublayer_activations_steers_that_sublayer(tiny_llama):
    """An int layer steers where the activations were read; a Site of another component is an error."""
    from steerkit.activations import ActivationSet
    from steerkit.estimators import PVSteerer
    from steerkit.lm import Site
    from steerkit.steering import SteeredModel

    rng = np.random.default_rng(0)
    ids = np.repeat(np.arange(4), 2)
    acts = ActivationSet({"response_avg": rng.normal(size=(8, 4, 64)).astype(np.float32)}, np.tile([1, 0], 4), ids,
                         np.zeros(8, dtype=int), ids, component="mlp")
    model = SteeredModel(tiny_llama, PVSteerer(), layer=2).fit(acts)
    assert [i.site for i in model.interventions()] == [Site(2, "mlp")]
    with pytest.raises(ValueError, match=r"fitted on mlp activations but layer=Site\(.*steers the residual output"):
        SteeredModel(tiny_llama, PVSteerer(), layer=Site(2)).fit(acts).interventions()
