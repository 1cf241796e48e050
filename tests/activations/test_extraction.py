import numpy as np
import pytest
import torch

from steerkit.activations import POSITIONS, extract_activations, pooling_weights
from tests.conftest import build_tiny

PROMPT_QS = ["What is a cloud?", "Tell me a very long story about a small dog who lived by the sea."]
ANSWERS = ["A cloud is water vapour.", "Once upon a time there was a dog. It liked the sea very much indeed."]


def _hf_hidden_states(lm, prompt, response):
    """Independent reference: transformers' own output_hidden_states for one unpadded sequence."""
    p = lm.tokenizer(prompt, add_special_tokens=False)["input_ids"]
    r = lm.tokenizer(response, add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        out = lm.model(torch.tensor([p + r]), output_hidden_states=True)
    return [h[0].float().numpy() for h in out.hidden_states], len(p)


@pytest.mark.parametrize("arch", ["llama", "gpt2", "gemma3"])
def test_pooled_reads_match_hidden_states(arch, tokenizer):
    lm = build_tiny(arch, tokenizer)
    prompts = [lm.chat_prompt(q) for q in PROMPT_QS]
    acts = extract_activations(lm, prompts, ANSWERS, batch_size=2)
    for i in range(2):
        hidden, n_prompt = _hf_hidden_states(lm, prompts[i], ANSWERS[i])
        for layer in range(lm.n_blocks):  # hidden_states[l] = block l output for l < L
            h = hidden[layer]
            np.testing.assert_allclose(acts["prompt_last"][i, layer], h[n_prompt - 1], atol=1e-4, rtol=1e-4)
            np.testing.assert_allclose(acts["prompt_avg"][i, layer], h[:n_prompt].mean(0), atol=1e-4, rtol=1e-4)
            np.testing.assert_allclose(acts["response_avg"][i, layer], h[n_prompt:].mean(0), atol=1e-4, rtol=1e-4)


def test_last_layer_is_block_output_not_final_norm(tiny_llama):
    prompt = tiny_llama.chat_prompt(PROMPT_QS[0])
    acts = extract_activations(tiny_llama, [prompt], [ANSWERS[0]])
    hidden, n_prompt = _hf_hidden_states(tiny_llama, prompt, ANSWERS[0])
    captured = []
    handle = tiny_llama.blocks[-1].register_forward_hook(lambda m, a, o: captured.append(o[0] if isinstance(o, tuple) else o))
    try:
        with torch.inference_mode():
            tiny_llama.model(torch.tensor([tiny_llama.tokenizer(prompt + ANSWERS[0], add_special_tokens=False)["input_ids"]]))
    finally:
        handle.remove()
    last = acts["prompt_last"][0, -1]
    np.testing.assert_allclose(last, captured[0][0, n_prompt - 1].numpy(), atol=1e-4)
    assert not np.allclose(last, hidden[-1][n_prompt - 1], atol=1e-3)  # HF's last entry is after the final norm


def test_padding_does_not_change_activations(smollm):
    """One example alone and inside a padded batch with longer and shorter neighbours."""
    prompts = [smollm.chat_prompt(q) for q in PROMPT_QS + ["Hi"]]
    answers = ANSWERS + ["Hello!"]
    alone = extract_activations(smollm, prompts[:1], answers[:1])
    batch = extract_activations(smollm, prompts, answers, batch_size=3)
    for pos in POSITIONS:
        np.testing.assert_allclose(batch[pos][0], alone[pos][0], atol=2e-4, rtol=1e-4)
    assert alone["response_avg"].shape == (1, 31, 576)


def test_pooling_weights_rows_are_averages():
    w = pooling_weights([2, 3], [5, 4], 6)
    assert w.shape == (2, 3, 6)
    np.testing.assert_allclose(w.sum(-1), 1.0)
    assert w[0, 0].tolist() == [0, 1, 0, 0, 0, 0]
    np.testing.assert_allclose(w[0, 2], [0, 0, 1 / 3, 1 / 3, 1 / 3, 0])
    np.testing.assert_allclose(w[1, 1], [1 / 3, 1 / 3, 1 / 3, 0, 0, 0])


def test_empty_response_is_a_clear_error(tiny_llama):
    with pytest.raises(ValueError, match="response 1 is empty"):
        extract_activations(tiny_llama, ["a", "b"], ["x", ""])


def test_prompt_only_reads_match_full_reads(tiny_llama):
    prompts = [tiny_llama.chat_prompt(q) for q in PROMPT_QS]
    full = extract_activations(tiny_llama, prompts, ANSWERS)
    alone = extract_activations(tiny_llama, prompts)
    assert set(alone) == {"prompt_last", "prompt_avg"}
    for pos in alone:  # causal attention: the answer never changes what the prompt sees
        np.testing.assert_allclose(alone[pos], full[pos], atol=1e-5)


@pytest.mark.parametrize("arch, component", [("llama", "attn"), ("gpt2", "mlp"), ("gpt_neox", "attn")])
def test_pooled_reads_at_a_sublayer_match_its_output(arch, component, tokenizer):
    from steerkit.lm import Site, record_activations

    lm = build_tiny(arch, tokenizer)
    prompts = [lm.chat_prompt(q) for q in PROMPT_QS]
    acts = extract_activations(lm, prompts, ANSWERS, batch_size=2, component=component)
    np.testing.assert_array_equal(acts["response_avg"][:, 0], 0)  # no sublayer before block 1
    for i in range(2):
        n_prompt = len(lm.tokenizer(prompts[i], add_special_tokens=False)["input_ids"])
        sites = [Site(layer, component) for layer in range(1, lm.n_blocks + 1)]
        ids = lm.tokenizer(prompts[i] + ANSWERS[i], add_special_tokens=False)["input_ids"]
        with torch.inference_mode(), record_activations(lm, sites) as rec:
            lm.model(torch.tensor([ids]))
        for site in sites:
            h = rec[site][0][0].numpy()
            np.testing.assert_allclose(acts["prompt_last"][i, site.layer], h[n_prompt - 1], atol=1e-4, rtol=1e-4)
            np.testing.assert_allclose(acts["response_avg"][i, site.layer], h[n_prompt:].mean(0), atol=1e-4, rtol=1e-4)


def test_activation_set_records_its_component(tiny_llama, tmp_path):
    import pandas as pd

    from steerkit.activations import ActivationSet, build_activation_set

    samples = pd.DataFrame({"question_id": [0, 0], "instruction_id": [0, 0], "contrast_id": [0, 0], "y": [1, 0],
                            "system": ["Be brief.", "Be long."], "question": PROMPT_QS[:1] * 2, "response": ANSWERS,
                            "prompt": [tiny_llama.chat_prompt(PROMPT_QS[0], s) for s in ("Be brief.", "Be long.")]})
    mlp = build_activation_set(tiny_llama, samples, progress=False, component="mlp")
    residual = build_activation_set(tiny_llama, samples, progress=False)
    assert (mlp.component, residual.component) == ("mlp", "residual")
    assert ActivationSet.load(mlp.save(tmp_path / "mlp")).component == "mlp"
    assert mlp.subset([True, True]).component == "mlp"
    assert not np.allclose(mlp.X("response_avg", 2), residual.X("response_avg", 2))
    with pytest.raises(ValueError, match="component must be one of"):
        extract_activations(tiny_llama, ["a"], ["b"], component="ffn")
