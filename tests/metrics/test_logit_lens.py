"""Logit lens: top and bottom tokens of a vector through the final norm and unembedding."""

import numpy as np
import pytest
import torch

from steerkit.metrics import logit_lens


def _manual_logits(lm, vector):
    """RMSNorm and the unembedding matrix written out (tiny Llama: no bias)."""
    norm = lm.model.model.norm
    v = torch.as_tensor(vector, dtype=torch.float32)
    normed = v / torch.sqrt(v.pow(2).mean() + norm.variance_epsilon) * norm.weight.detach()
    return (lm.model.lm_head.weight.detach() @ normed).numpy()


def test_logit_lens_lists_the_extreme_tokens_with_their_logits(tiny_llama):
    vector = np.random.default_rng(0).normal(size=tiny_llama.hidden_size).astype(np.float32)
    lens = logit_lens(tiny_llama, vector, k=5)
    logits = _manual_logits(tiny_llama, vector)
    top, bottom = np.argsort(-logits)[:5], np.argsort(logits)[:5]
    assert [t for t, _ in lens["top"]] == [tiny_llama.tokenizer.decode([int(i)]) for i in top]
    assert [t for t, _ in lens["bottom"]] == [tiny_llama.tokenizer.decode([int(i)]) for i in bottom]
    np.testing.assert_allclose([x for _, x in lens["top"]], logits[top], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose([x for _, x in lens["bottom"]], logits[bottom], rtol=1e-4, atol=1e-5)


def test_a_tokens_unembedding_row_raises_that_token_and_its_negative_lowers_it(tiny_llama):
    token = tiny_llama.tokenizer.encode(" pirate", add_special_tokens=False)[0]
    row = tiny_llama.model.lm_head.weight[token].detach().numpy()
    expected = tiny_llama.tokenizer.decode([token])
    assert logit_lens(tiny_llama, row, k=1)["top"][0][0] == expected
    assert logit_lens(tiny_llama, -row, k=1)["bottom"][0][0] == expected


@pytest.mark.parametrize("vector, k, fragment", [(np.zeros(64), 0, "k must be a positive integer"),
                                                 (np.zeros((2, 64)), 3, r"vector must have shape \(64,\)")])
def test_bad_arguments_are_refused(tiny_llama, vector, k, fragment):
    with pytest.raises(ValueError, match=fragment):
        logit_lens(tiny_llama, vector, k=k)
