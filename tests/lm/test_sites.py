import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from steerkit.lm import LanguageModel, Site, SublayerNotFoundError, record_activations
from steerkit.lm.sites import find_sublayer_path
from steerkit.steering import steer
from tests.conftest import ARCHES, build_tiny

EXPECTED_SUBLAYERS = {
    "llama": ("self_attn", "mlp"), "qwen2": ("self_attn", "mlp"), "gemma3": ("self_attn", "mlp"),
    "phi": ("self_attn", "mlp"), "phi3": ("self_attn", "mlp"), "gpt_neox": ("attention", "mlp"),
    "gpt2": ("attn", "mlp"),
}
TEXT = "The quick brown fox jumps over the lazy dog."


def _forward(lm, text=TEXT):
    ids = torch.tensor([lm.tokenizer(text, add_special_tokens=False)["input_ids"]])
    with torch.inference_mode():
        return lm.model(ids).logits


@pytest.mark.parametrize("arch", ARCHES)
def test_attention_and_mlp_found_by_the_general_rule(arch, tokenizer):
    lm = build_tiny(arch, tokenizer)
    block = lm.blocks[0]
    assert (find_sublayer_path(block, "attn"), find_sublayer_path(block, "mlp")) == EXPECTED_SUBLAYERS[arch]
    assert lm.site_module(Site(2, "mlp")) is lm.blocks[1].get_submodule(EXPECTED_SUBLAYERS[arch][1])


def test_embedded_model_sublayers(smollm):
    assert smollm.site_module(Site(5, "attn")) is smollm.blocks[4].self_attn
    assert smollm.site_module(Site(30, "mlp")) is smollm.blocks[29].mlp


@pytest.mark.parametrize("arch", [a for a in ARCHES if a != "gemma3"])  # gemma3 normalises both outputs first
def test_residual_update_is_attention_plus_mlp_output(arch, tokenizer):
    lm = build_tiny(arch, tokenizer)
    sites = [Site(1), Site(2), Site(2, "attn"), Site(2, "mlp")]
    with record_activations(lm, sites) as rec:
        _forward(lm)
    before, after, attn, mlp = (rec[site][0][0].numpy() for site in sites)
    np.testing.assert_allclose(after - before, attn + mlp, atol=1e-4)


@pytest.mark.parametrize("component", ["attn", "mlp"])
def test_steering_a_sublayer_changes_what_reading_it_and_the_block_output_see(tiny_llama, component):
    v = np.random.default_rng(0).normal(size=64).astype(np.float32)
    sites = [Site(2, component), Site(2), Site(1)]
    with record_activations(tiny_llama, sites) as plain:
        _forward(tiny_llama)
    with record_activations(tiny_llama, sites) as rec, steer(tiny_llama, v, Site(2, component), 2.0, positions="all"):
        _forward(tiny_llama)
    for site in sites[:2] if component == "mlp" else sites[:1]:  # the MLP output is added to the block output as is
        delta = (rec[site][0] - plain[site][0])[0].numpy()
        np.testing.assert_allclose(delta, np.broadcast_to(2.0 * v, delta.shape), atol=1e-4)
    np.testing.assert_array_equal(rec[Site(1)][0], plain[Site(1)][0])


def test_site_values_and_errors():
    assert Site(3) == Site(3, "residual") and hash(Site(3, "mlp")) == hash(Site(3, "mlp"))
    assert Site(np.int64(2)).layer == 2 and type(Site(np.int64(2)).layer) is int
    with pytest.raises(dataclasses.FrozenInstanceError):
        Site(1).layer = 2
    with pytest.raises(ValueError, match=r"Site\(0, 'attn'\) does not exist.*layer 1"):
        Site(0, "attn")
    with pytest.raises(ValueError, match="component must be one of"):
        Site(1, "ffn")
    with pytest.raises(ValueError, match=">= 0"):
        Site(-1)
    with pytest.raises(TypeError, match="integer"):
        Site(1.5)


def test_out_of_range_site_layer_is_refused(tiny_llama):
    with pytest.raises(ValueError, match=r"use 0..3"):
        steer(tiny_llama, np.zeros(64), Site(4, "mlp"))


class Mixer(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(4, 4)


class OddBlock(nn.Module):
    """A block whose attention and MLP have names the rule does not know."""

    def __init__(self):
        super().__init__()
        self.mixer, self.channel = Mixer(), Mixer()


def test_unfound_sublayer_names_block_class_and_option():
    with pytest.raises(SublayerNotFoundError, match=r"attn submodule of OddBlock.*attn_path='self_attn'"):
        find_sublayer_path(OddBlock(), "attn")
    with pytest.raises(SublayerNotFoundError, match=r"mlp submodule of OddBlock.*mlp_path='mlp'"):
        find_sublayer_path(OddBlock(), "mlp")
    assert find_sublayer_path(OddBlock(), "attn", "mixer") == "mixer"
    with pytest.raises(SublayerNotFoundError, match=r"OddBlock has no submodule 'mixr': fix attn_path="):
        find_sublayer_path(OddBlock(), "attn", "mixr")


def test_explicit_sublayer_paths_on_the_language_model(tiny_llama):
    lm = LanguageModel(tiny_llama.model, tiny_llama.tokenizer, attn_path="mlp", mlp_path="self_attn")
    assert lm.site_module(Site(1, "attn")) is tiny_llama.blocks[0].mlp
    assert lm.site_module(Site(1, "mlp")) is tiny_llama.blocks[0].self_attn
