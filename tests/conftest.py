"""Shared fixtures: the embedded model (loaded once) and tiny random models built from configs."""

from __future__ import annotations

import pytest
import torch

from steerkit.lm import LanguageModel, load_model


@pytest.fixture(scope="session")
def smollm():
    """The embedded SmolLM2-135M-Instruct (float32, CPU)."""
    return load_model()


@pytest.fixture(scope="session")
def tokenizer(smollm):
    return smollm.tokenizer


def tiny_config(arch: str, vocab_size: int):
    """A 3-block random model config of the given architecture family (hidden size 64)."""
    import transformers as tf

    common = dict(vocab_size=vocab_size, num_hidden_layers=3, num_attention_heads=4, hidden_size=64)
    if arch == "llama":
        return tf.LlamaConfig(**common, intermediate_size=128, num_key_value_heads=2)
    if arch == "qwen2":
        return tf.Qwen2Config(**common, intermediate_size=128, num_key_value_heads=2)
    if arch == "gemma3":
        return tf.Gemma3TextConfig(**common, intermediate_size=128, num_key_value_heads=2, head_dim=16)
    if arch == "phi":
        return tf.PhiConfig(**common, intermediate_size=128)
    if arch == "phi3":
        return tf.Phi3Config(**common, intermediate_size=128, num_key_value_heads=2, pad_token_id=0)
    if arch == "gpt_neox":
        return tf.GPTNeoXConfig(**common, intermediate_size=128)
    if arch == "gpt2":
        return tf.GPT2Config(vocab_size=vocab_size, n_layer=3, n_head=4, n_embd=64)
    raise ValueError(arch)


ARCHES = ("llama", "qwen2", "gemma3", "phi", "phi3", "gpt_neox", "gpt2")
EXPECTED_BLOCK_PATHS = {
    "llama": "model.layers", "qwen2": "model.layers", "gemma3": "model.layers", "phi": "model.layers",
    "phi3": "model.layers", "gpt_neox": "gpt_neox.layers", "gpt2": "transformer.h",
}


def build_tiny(arch: str, tokenizer, seed: int = 0) -> LanguageModel:
    """A tiny random model of ``arch`` sharing the embedded tokenizer (float32, eval mode)."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(tiny_config(arch, len(tokenizer)))
    model.eval()
    return LanguageModel(model, tokenizer, name=f"tiny-{arch}")


@pytest.fixture(scope="session")
def tiny_llama(tokenizer):
    return build_tiny("llama", tokenizer)


@pytest.fixture(scope="session")
def pirate_activations(smollm):
    """A small real ActivationSet: 3 pirate questions x 5 pairs on the embedded model."""
    from steerkit.activations import build_activation_set, generate_contrastive
    from steerkit.concepts import load_concept

    samples = generate_contrastive(smollm, load_concept("pirate"), n_questions=3, max_new_tokens=24,
                                   batch_size=30, progress=False)
    return build_activation_set(smollm, samples, concept="pirate", progress=False)


@pytest.fixture(scope="session")
def pirate_vector(pirate_activations):
    """``(layer, PV vector (d,))`` at layer 18 of the embedded model."""
    layer = 18
    return layer, pirate_activations.differences("response_avg", layer).mean(0)
