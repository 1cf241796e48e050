import numpy as np
import pytest
import torch

from steerkit.lm import Site
from steerkit.lm.hooks import intervene, record_activations
from steerkit.sae.interventions import ClampFeatures
from tests.sae.hand_built_sae import hand_built_sae

QUESTIONS = ["Hi", "What is a cloud made of?", "Tell me a long story about a dog.", "Why?"]
LAYER, FEATURE = 2, 6


def _ids(lm, text):
    return torch.tensor([lm.tokenizer(lm.chat_prompt(text), add_special_tokens=False)["input_ids"]])


def test_clamping_to_the_current_value_is_an_exact_no_op(tiny_llama):
    sae = hand_built_sae(layer=LAYER)
    hidden = torch.as_tensor(2 * sae.W_dec_[FEATURE]).reshape(1, 1, 64) + 0.3 * torch.randn(1, 1, 64)
    current = sae.encode_torch(hidden)[0, 0, [FEATURE, 3]]
    assert current.max() > 0  # a real value, not only zeros
    assert torch.equal(ClampFeatures(sae, [FEATURE, 3], current.tolist())(hidden), hidden)
    # in a model: features that never fire (bias -1000), clamped to 0, leave the logits unchanged
    dead = hand_built_sae(d=tiny_llama.hidden_size, layer=LAYER, b_enc=np.full(16, -1e3))
    ids = _ids(tiny_llama, QUESTIONS[2])
    with torch.inference_mode():
        plain = tiny_llama.model(ids).logits
        with intervene(tiny_llama, [ClampFeatures(dead, [FEATURE, 0, 9], 0.0)]):
            assert torch.equal(tiny_llama.model(ids).logits, plain)


def test_clamping_moves_the_site_by_the_value_change_along_the_decoder_row(tiny_llama):
    sae = hand_built_sae(d=tiny_llama.hidden_size, layer=LAYER)
    ids = _ids(tiny_llama, QUESTIONS[1])
    with record_activations(tiny_llama, [LAYER]) as plain, torch.inference_mode():
        tiny_llama.model(ids)
    with record_activations(tiny_llama, [LAYER]) as clamped, intervene(tiny_llama, [ClampFeatures(sae, FEATURE, 4.0)]):
        with torch.inference_mode():
            tiny_llama.model(ids)
    h = plain[LAYER][0][0].numpy()
    row = sae.W_dec_[FEATURE]
    expected = (4.0 - np.maximum(h @ row, 0))[:, None] * row
    np.testing.assert_allclose(clamped[LAYER][0][0].numpy() - h, expected, atol=1e-5)


def test_per_row_clamping_gives_each_row_what_it_gets_alone(tiny_llama):
    sae = hand_built_sae(d=tiny_llama.hidden_size, layer=LAYER)
    per_row = [None, [ClampFeatures(sae, FEATURE, 30.0, positions="response")],
               [ClampFeatures(sae, [1, 2], [20.0, -5.0], site=Site(1))], None]
    together = tiny_llama.generate(QUESTIONS, interventions=per_row, max_new_tokens=6, batch_size=4)
    alone = [tiny_llama.generate([q], interventions=[row], max_new_tokens=6)[0] for q, row in zip(QUESTIONS, per_row)]
    assert together == alone
    plain = tiny_llama.generate(QUESTIONS, max_new_tokens=6, batch_size=4)
    assert together[0] == plain[0] and together[3] == plain[3]
    assert together[1] != plain[1] and together[2] != plain[2]


@pytest.mark.parametrize("features, values, match", [([16], 1.0, "features"), ([], 1.0, "features"),
                                                      ([1.5], 1.0, "features"), ([1], float("nan"), "values")])
def test_invalid_features_or_values_name_the_argument(features, values, match):
    with pytest.raises(ValueError, match=match):
        ClampFeatures(hand_built_sae(), features, values)
