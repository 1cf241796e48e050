import numpy as np
import pytest
import torch

from steerkit.lm import Site
from steerkit.lm.interventions import Ablate, AddVector, LowRank, SetProjection, Window
from tests.conftest import build_tiny

QUESTIONS = ["Hi", "What is a cloud made of?", "Tell me a long story about a dog who lived by the sea.",
             "Why?", "Name three colours of the rainbow, please.", "How do plants grow?", "Count to five."]
GEN = dict(max_new_tokens=8, batch_size=len(QUESTIONS))


def _vector(seed, scale=6.0):
    return (scale * np.random.default_rng(seed).normal(size=64) / 8).astype(np.float32)


def _trained_low_rank(site, positions):
    low = LowRank(64, 4, site=site, positions=positions)
    torch.manual_seed(1)
    with torch.no_grad():
        low.W_up.normal_(std=2.0)
    return low


def _per_row():
    shared = [AddVector(_vector(1), site=Site(1), coefficient=4.0)]
    return [
        None,
        shared,
        [AddVector(_vector(2), site=Site(2, "mlp"), positions="all"), Ablate(_vector(3), site=Site(1, "attn"))],
        [SetProjection(_vector(4), 3.0, site=Site(3), positions=Window(2, 6))],
        [AddVector(_vector(5), site=0, coefficient=8.0, positions="first")],
        [_trained_low_rank(Site(2, "attn"), "last"), AddVector(_vector(6), site=Site(3, "mlp"), positions="prompt")],
        shared,  # the same list on another prompt: one group of two rows
    ]


@pytest.mark.parametrize("arch", ["llama", "gpt2", "gpt_neox", "gemma3"])
def test_each_row_gets_what_it_gets_alone(arch, tokenizer):
    lm = build_tiny(arch, tokenizer)
    per_row = _per_row()
    together = lm.generate(QUESTIONS, interventions=per_row, **GEN)
    alone = [lm.generate([q], interventions=[row], max_new_tokens=8)[0] for q, row in zip(QUESTIONS, per_row)]
    assert together == alone
    plain = lm.generate(QUESTIONS, **GEN)
    assert together[0] == plain[0]
    assert sum(a != b for a, b in zip(together[1:], plain[1:])) >= 4  # the steering does change answers


def test_untrained_low_rank_is_an_exact_no_op(tiny_llama):
    plain = tiny_llama.generate(QUESTIONS, **GEN)
    per_row = [[LowRank(64, 8, site=Site(layer % 3 + 1, "mlp"), positions="all")] for layer in range(len(QUESTIONS))]
    assert tiny_llama.generate(QUESTIONS, interventions=per_row, **GEN) == plain


def test_per_row_combines_with_steering_all_rows(tiny_llama):
    from steerkit.steering import steer

    per_row = _per_row()[:3]
    with steer(tiny_llama, _vector(9), 2, 3.0):
        together = tiny_llama.generate(QUESTIONS[:3], interventions=per_row, **GEN)
        alone = [tiny_llama.generate([q], interventions=[row], max_new_tokens=8)[0]
                 for q, row in zip(QUESTIONS, per_row)]
    assert together == alone


def test_one_entry_per_prompt_is_required(tiny_llama):
    with pytest.raises(ValueError, match="interventions has 2 entries but there are 3 prompts"):
        tiny_llama.generate(QUESTIONS[:3], interventions=[None, None], max_new_tokens=2)
    with pytest.raises(TypeError, match="expected an intervention"):
        tiny_llama.generate(QUESTIONS[:1], interventions=[[np.zeros(64)]], max_new_tokens=2)
