"""VectorRegistry: names, sidecar defaults, recommended layers, adapters, one-line refusals."""

import numpy as np
import pytest
import torch

from steerkit.lm import Site
from steerkit.lm.interventions import AddVector
from steerkit.serve import UnknownSteering, UnusableSteering, VectorRegistry
from steerkit.training import TrainedSteerer


@pytest.fixture(scope="module")
def registry(steering_folder, tiny_llama):
    return VectorRegistry.from_folder(steering_folder, tiny_llama)


def test_names_follow_the_folder_layout_and_skip_files_without_sidecar(registry):
    assert registry.names == ["adapters/style", "calm", "narrow", "pirate/best", "pirate/pv"]
    assert [registry.entries[n].kind for n in registry.names] == ["adapter", "vector", "vector", "vector", "vector"]


def test_recommended_layers_come_from_the_run_summary(registry):
    assert registry.entries["pirate/best"].recommended_layers == [1, 2]
    assert registry.entries["pirate/pv"].recommended_layers == [1, 2]
    assert registry.entries["calm"].recommended_layers is None


def test_sidecar_defaults_and_overrides(registry, steering_folder):
    from steerkit.estimators.files import load_vector

    vector, _ = load_vector(steering_folder / "pirate" / "vectors" / "best")
    [default] = registry.interventions("pirate/best")
    assert isinstance(default, AddVector)
    assert (default.site, default.coefficient, default.positions) == (Site(2), 4.0, "response")
    np.testing.assert_array_equal(default.vector.numpy(), vector)
    [custom] = registry.interventions("pirate/best", layer=3, coefficient=-2.5, positions="all", component="mlp")
    assert (custom.site, custom.coefficient, custom.positions) == (Site(3, "mlp"), -2.5, "all")


def test_an_all_layer_vector_steers_with_the_row_of_its_layer(registry, steering_folder):
    from steerkit.estimators.files import load_vector

    vectors, _ = load_vector(steering_folder / "pirate" / "vectors" / "pv")
    for layer in (None, 3):
        [intervention] = registry.interventions("pirate/pv", layer=layer)
        np.testing.assert_array_equal(intervention.vector.numpy(), vectors[1 if layer is None else layer])


def test_an_adapter_gives_its_trained_interventions(registry, steering_folder, tiny_llama):
    saved = TrainedSteerer.load(steering_folder / "adapters" / "style", tiny_llama).interventions()
    loaded = registry.interventions("adapters/style")
    assert [i.site for i in loaded] == [Site(2, "mlp")]
    assert torch.equal(loaded[0].W_up, saved[0].W_up)


@pytest.mark.parametrize("call, error, words", [
    (dict(name="pirat"), UnknownSteering, "known vectors: calm, narrow, pirate/best, pirate/pv"),
    (dict(name="adapters/style", layer=2), UnusableSteering, "remove layer"),
    (dict(name="pirate/best", layer=9), UnusableSteering, "layer 9 is out of range"),
    (dict(name="pirate/best", coefficient=float("nan")), UnusableSteering, "not a usable steering strength"),
    (dict(name="pirate/best", coefficient=1e9), UnusableSteering, "not a usable steering strength"),
    (dict(name="pirate/best", positions="middle"), UnusableSteering, "use one of all, prompt, response"),
    (dict(name="narrow"), UnusableSteering, "32 values but tiny-llama has hidden size 64"),
])
def test_refusals_are_one_line_and_say_what_to_fix(registry, call, error, words):
    with pytest.raises(error) as caught:
        registry.interventions(**call)
    assert words in str(caught.value) and "\n" not in str(caught.value)


def test_a_missing_folder_is_named(tiny_llama, tmp_path):
    with pytest.raises(FileNotFoundError, match="not a folder"):
        VectorRegistry.from_folder(tmp_path / "nothing", tiny_llama)
