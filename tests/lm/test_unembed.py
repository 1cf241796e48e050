"""The final norm and unembedding, found by rule on every tiny architecture and the embedded model."""

import numpy as np
import pytest
import torch
from torch import nn

from steerkit.lm import record_activations
from steerkit.lm.unembed import FinalNormNotFoundError, find_final_norm, unembed
from tests.conftest import ARCHES, build_tiny

EXPECTED_NORM_PATHS = {
    "llama": "model.norm", "qwen2": "model.norm", "gemma3": "model.norm", "phi": "model.final_layernorm",
    "phi3": "model.norm", "gpt_neox": "gpt_neox.final_layer_norm", "gpt2": "transformer.ln_f",
}


def _last_block_output_and_logits(lm, text="What is a cloud? Tell me more."):
    ids = torch.tensor([lm.tokenizer(text, add_special_tokens=False)["input_ids"]])
    with record_activations(lm, [lm.n_blocks]) as recorded, torch.inference_mode():
        logits = lm.model(ids).logits
    return recorded[lm.n_blocks][0][0], logits[0].float().numpy()


@pytest.mark.parametrize("arch", ARCHES)
def test_unembedding_the_last_block_output_gives_the_model_logits(tokenizer, arch):
    lm = build_tiny(arch, tokenizer)
    assert find_final_norm(lm.model)[0] == EXPECTED_NORM_PATHS[arch]
    hidden, logits = _last_block_output_and_logits(lm)
    np.testing.assert_allclose(unembed(lm, hidden.numpy()), logits, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(unembed(lm, hidden[-1]), logits[-1], atol=1e-4, rtol=1e-4)  # (d,) -> (V,)


def test_unembedding_on_the_embedded_model(smollm):
    assert find_final_norm(smollm.model)[0] == "model.norm"
    hidden, logits = _last_block_output_and_logits(smollm)
    np.testing.assert_allclose(unembed(smollm, hidden), logits, atol=1e-3, rtol=1e-4)


def test_a_model_without_a_final_norm_is_named_in_the_error(tokenizer):
    lm = build_tiny("llama", tokenizer)
    lm.model.model.norm = nn.Identity()
    with pytest.raises(FinalNormNotFoundError, match="final norm of LlamaForCausalLM.*norm_path="):
        unembed(lm, np.zeros(lm.hidden_size))
    _, norm = find_final_norm(lm.model, "model.norm")  # the explicit path overrides the rule
    assert isinstance(norm, nn.Identity)


def test_vectors_of_the_wrong_width_are_refused(tiny_llama):
    with pytest.raises(ValueError, match=r"vectors have shape \(3, 5\).*\(n, 64\)"):
        unembed(tiny_llama, np.zeros((3, 5)))
