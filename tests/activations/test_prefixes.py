"""Shared-prefix extraction: the plan (which texts share what) and equality with the plain pass."""

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from steerkit.activations import extract_activations
from steerkit.activations.prefixes import shared_prefix_groups
from steerkit.lm import LanguageModel
from tests.conftest import ARCHES, build_tiny, tiny_config

INSTRUCTIONS = ["Answer like a pirate, with plenty of nautical slang and swagger.",
                "Answer plainly and politely, like a careful librarian would."]
QUESTIONS = ["What is a cloud?", "Why do cats purr?", "How do I boil an egg?"]


def _texts(lm):
    """GRACE-shaped data plus awkward cases: a repeated prompt with two different answers (its
    last prompt token lies inside the shared prefix) and a prompt that is a prefix of another."""
    prompts = [lm.chat_prompt(q, i, role="user") for i in INSTRUCTIONS for q in QUESTIONS]
    responses = [f"Answer number {k}: it depends on the weather." for k in range(len(prompts))]
    prompts += [prompts[0], "Short text", "Short text that goes on"]
    responses += ["A different answer entirely.", " here", " and on"]
    return prompts, responses


def _assert_same(a, b, atol):
    assert a.keys() == b.keys()
    for position in a:
        np.testing.assert_allclose(a[position], b[position], atol=atol, rtol=1e-4, err_msg=position)


def test_groups_partition_and_share_their_prefix():
    sequences = [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, k] for k in range(4)] + [[9] * 12, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]
    groups = shared_prefix_groups(sequences, min_prefix=4)
    members = np.concatenate([m for _, m in groups])
    assert sorted(members.tolist()) == list(range(6))
    for prefix, group in groups:
        for i in group:
            assert sequences[i][:prefix] == sequences[group[0]][:prefix]
            assert prefix < len(sequences[i])  # the last token is always computed in its own pass
    assert (9, 5) in [(p, len(m)) for p, m in groups]  # capped at the shorter member's length - 1
    assert [m.tolist() for p, m in groups if p == 0] == [[4]]


def test_groups_prefer_long_shared_instructions_over_the_common_header():
    header, a, b = list(range(10)), list(range(100, 120)), list(range(200, 220))
    sequences = [header + inst + [300 + q, 400] for inst in (a, b) for q in range(5)]
    groups = shared_prefix_groups(sequences)
    assert sorted((p, len(m)) for p, m in groups) == [(30, 5), (30, 5)]
    [(prefix, alone)] = shared_prefix_groups([[1, 2, 3]])
    assert prefix == 0 and alone.tolist() == [0]


def test_short_common_prefixes_are_not_shared():
    sequences = [[1, 2, 3, k, 5, 6, 7, 8, 9] for k in range(5)]
    assert [(p, len(m)) for p, m in shared_prefix_groups(sequences, min_prefix=8)] == [(0, 5)]


@pytest.mark.parametrize("arch", ARCHES)
def test_shared_prefix_extraction_equals_plain_pass(arch, tokenizer):
    lm = build_tiny(arch, tokenizer)
    prompts, responses = _texts(lm)
    plain = extract_activations(lm, prompts, responses, batch_size=4, share_prefixes=False)
    shared = extract_activations(lm, prompts, responses, batch_size=4)
    _assert_same(shared, plain, atol=1e-4)


def test_shared_prefix_beyond_a_sliding_window(tokenizer):
    """Gemma-3 local layers: the cached prefix is longer than the attention window."""
    config = tiny_config("gemma3", len(tokenizer))
    config.sliding_window = 6
    config.layer_types = ["sliding_attention", "full_attention", "sliding_attention"]
    torch.manual_seed(0)
    lm = LanguageModel(AutoModelForCausalLM.from_config(config).eval(), tokenizer, name="tiny-gemma3-window")
    prompts, responses = _texts(lm)
    plain = extract_activations(lm, prompts, responses, batch_size=3, share_prefixes=False)
    _assert_same(extract_activations(lm, prompts, responses, batch_size=3), plain, atol=1e-4)


def test_shared_prefix_prompt_only_on_the_embedded_model(smollm):
    prompts = [smollm.chat_prompt(q, i, role="user") for i in INSTRUCTIONS for q in QUESTIONS]
    plain = extract_activations(smollm, prompts, share_prefixes=False)
    _assert_same(extract_activations(smollm, prompts, batch_size=2), plain, atol=2e-3)
