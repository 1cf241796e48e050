"""docs/toolkit_mapping.md: its python blocks run, in order, on a tiny random Llama, and compute
what the page says they compute."""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from steerkit import AddVector, Site, intervene, record_activations
from steerkit.estimators.files import load_vector, save_vector

DOCS = Path(__file__).resolve().parents[2] / "docs"
PAGE = DOCS / "toolkit_mapping.md"
QUESTION = "How do I boil an egg?"


@pytest.fixture(scope="module")
def page(tiny_llama, tmp_path_factory):
    """``(namespace, folder)``: the names the page's python blocks define when run in order with
    ``lm`` = the tiny Llama, inside ``folder`` (where their files are written)."""
    folder = tmp_path_factory.mktemp("toolkit_mapping")
    namespace = {"lm": tiny_llama}
    with contextlib.chdir(folder):
        for code in re.findall(r"```python\n(.*?)```", PAGE.read_text(encoding="utf-8"), flags=re.S):
            exec(compile(code, str(PAGE), "exec"), namespace)
    return namespace, folder


def _sublayer_outputs(lm, layer: int, **inputs) -> torch.Tensor:
    """The output (B, T, d) of block ``layer``'s ``self_attn`` in one forward pass, read by a hook
    of this test (not steerkit's)."""
    seen = []
    handle = lm.blocks[layer - 1].self_attn.register_forward_hook(lambda m, a, out: seen.append(out[0].detach()))
    try:
        with torch.inference_mode():
            lm.model(**inputs)
    finally:
        handle.remove()
    return seen[0]


def test_page_is_linked_from_the_index():
    assert "(toolkit_mapping.md)" in (DOCS / "index.md").read_text(encoding="utf-8")


def test_behaviour_vectors_hold_every_layer(page, tiny_llama):
    ns, _ = page
    for name in ("refusal", "uncertainty"):
        assert ns[name].shape == (tiny_llama.n_blocks + 1, tiny_llama.hidden_size)
        assert np.all(np.linalg.norm(ns[name][1:], axis=-1) > 0)
    assert not np.allclose(ns["refusal"], ns["uncertainty"])


def test_activation_hook_reads_the_attention_output_at_the_token_positions(page, tiny_llama):
    ns, _ = page
    assert sorted(ns["activations"]) == [1, 2, 3]
    for layer in (1, 2, 3):
        expected = _sublayer_outputs(tiny_llama, layer, **ns["inputs"])
        torch.testing.assert_close(ns["all_tokens"][layer], expected)
        torch.testing.assert_close(ns["activations"][layer], expected[:, -1])
        torch.testing.assert_close(ns["first_token"][layer], expected[:, 0])


def test_pooled_prompt_last_is_the_attention_output_at_each_prompts_last_token(page, tiny_llama):
    ns, _ = page
    lm = tiny_llama
    pooled = ns["pooled"]["prompt_last"]
    np.testing.assert_array_equal(pooled[:, 0], 0)  # no sublayer at the embedding output
    for row, prompt in enumerate(ns["prompts"]):
        inputs = lm.tokenizer([prompt], return_tensors="pt", add_special_tokens=lm.adds_special_tokens)
        for layer in (1, 2, 3):
            np.testing.assert_allclose(pooled[row, layer], _sublayer_outputs(lm, layer, **inputs)[0, -1].numpy(),
                                       atol=1e-4)


@pytest.mark.parametrize("mode", ["all", "last", "first"])
def test_injection_modes_steer_the_positions_the_table_names(tiny_llama, mode):
    lm, layer, coefficient = tiny_llama, 2, 3.0
    vector = np.random.default_rng(0).normal(size=lm.hidden_size).astype(np.float32)
    inputs = lm.tokenizer([lm.chat_prompt(QUESTION)], return_tensors="pt", add_special_tokens=lm.adds_special_tokens)
    with record_activations(lm, [layer]) as plain, torch.inference_mode():
        lm.model(**inputs)
    injection = AddVector(vector, site=Site(layer), coefficient=coefficient, positions=mode)
    with record_activations(lm, [layer]) as steered, intervene(lm, [injection]), torch.inference_mode():
        lm.model(**inputs)
    delta = (steered[layer][0] - plain[layer][0])[0].numpy()
    steered_positions = {"all": range(delta.shape[0]), "last": [delta.shape[0] - 1], "first": [0]}[mode]
    expected = np.zeros_like(delta)
    expected[list(steered_positions)] = coefficient * vector
    np.testing.assert_allclose(delta, expected, atol=1e-4)


def test_injector_block_and_per_prompt_interventions_agree(page, tiny_llama):
    ns, _ = page
    assert ns["same"][0] == ns["outputs"][0]
    assert ns["same"][1] == tiny_llama.generate(["What is a cloud made of?"], max_new_tokens=16)[0]


def _combined(ns, strengths: dict) -> list[AddVector]:
    """One AddVector per layer holding the strength-weighted sum of the page's vector sets."""
    totals = {}
    for name, vectors in ns["vector_sets"].items():
        for layer, vector in vectors.items():
            totals[layer] = totals.get(layer, 0) + strengths[name] * vector
    return [AddVector(total, site=Site(layer), positions="all") for layer, total in totals.items()]


def test_multi_vector_injector_equals_one_combined_vector_per_layer(page, tiny_llama):
    ns, _ = page
    lm = tiny_llama
    generate = dict(max_new_tokens=16)
    for answer, strengths in ((ns["before"], {"refusal": 1.0, "uncertainty": 0.5}),
                              (ns["after"], {"refusal": 0.8, "uncertainty": 0.5})):
        assert answer == lm.generate([QUESTION], interventions=[_combined(ns, strengths)], **generate)
    inputs = lm.tokenizer([lm.chat_prompt(QUESTION)], return_tensors="pt", add_special_tokens=lm.adds_special_tokens)
    with intervene(lm, [i for group in ns["injectors"].values() for i in group]), torch.inference_mode():
        installed = lm.model(**inputs).logits
    with intervene(lm, _combined(ns, {"refusal": 0.8, "uncertainty": 0.5})), torch.inference_mode():
        combined = lm.model(**inputs).logits
    torch.testing.assert_close(installed, combined, atol=1e-4, rtol=1e-4)


def test_set_strength_changes_generation_while_installed(page, tiny_llama):
    ns, _ = page
    lm = tiny_llama
    generate = dict(max_new_tokens=16)
    plain = lm.generate([QUESTION], **generate)
    with intervene(lm, [i for group in ns["injectors"].values() for i in group]):
        try:
            ns["set_strength"]("refusal", 0.0)
            ns["set_strength"]("uncertainty", 0.0)
            assert lm.generate([QUESTION], **generate) == plain
            ns["set_strength"]("refusal", 40.0)
            strong = lm.generate([QUESTION], **generate)
        finally:
            ns["set_strength"]("refusal", 0.8)
            ns["set_strength"]("uncertainty", 0.5)
    assert strong != plain
    assert strong == lm.generate([QUESTION], interventions=[_combined(ns, {"refusal": 40.0, "uncertainty": 0.0})],
                                 **generate)


def test_vector_files_keep_vector_and_metadata(page, tiny_llama):
    ns, _ = page
    refusal = ns["refusal"].astype(np.float32)
    np.testing.assert_array_equal(ns["vector"], refusal[2])
    assert {key: ns["meta"][key] for key in ("concept", "layer", "component", "model", "construction")} == {
        "concept": "refusal", "layer": 2, "component": "residual", "model": tiny_llama.name, "construction": "pv"}
    assert sorted(ns["vector_set"]) == [1, 2]
    for layer, vector in ns["vector_set"].items():
        np.testing.assert_array_equal(vector, refusal[layer])
    np.testing.assert_array_equal(ns["all_layers"], refusal)
    assert ns["all_meta"]["layer"] == 2 and ns["injection"].site == Site(2)
    np.testing.assert_array_equal(ns["injection"].vector.numpy(), refusal[2])


def test_a_sidecar_component_must_be_a_site_component(tmp_path):
    vector = np.ones(4, dtype=np.float32)
    with pytest.raises(ValueError, match=r"sidecar field 'component' must be one of \('residual', 'attn', 'mlp'\)"):
        save_vector(tmp_path / "bad", vector, layer=2, component="attention")
    assert not list(tmp_path.iterdir())  # nothing written
    save_vector(tmp_path / "mlp", vector, layer=2, component="mlp")
    sidecar = tmp_path / "mlp.json"
    sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), "component": "ffn"}))
    with pytest.raises(ValueError, match=r"mlp\.json: sidecar field 'component' must be one of .*; fix the field"):
        load_vector(tmp_path / "mlp")
