import contextlib
import copy

import numpy as np
import pytest
import torch

from steerkit.steering import Steering, record_activations, steer

PROMPTS = ["What is a cloud?", "Tell me a long story about a dog who lived by the sea and loved it."]


def _forward(lm, text):
    ids = torch.tensor([lm.tokenizer(text, add_special_tokens=False)["input_ids"]])
    with torch.inference_mode():
        return lm.model(ids).logits


def _vector(lm, seed=0):
    return np.random.default_rng(seed).normal(size=lm.hidden_size).astype(np.float32)


@pytest.mark.parametrize("layer", [0, 2, 3])
def test_steering_at_layer_changes_exactly_what_reading_there_sees(tiny_llama, layer):
    lm, v, coef = tiny_llama, _vector(tiny_llama), 2.5
    text = lm.chat_prompt(PROMPTS[0])
    layers = range(lm.n_blocks + 1)
    with record_activations(lm, layers) as plain:
        _forward(lm, text)
    with record_activations(lm, layers) as steered, steer(lm, v, layer, coef, positions="all"):
        _forward(lm, text)
    for other in layers:
        delta = (steered[other][0] - plain[other][0]).numpy()[0]
        if other < layer:
            np.testing.assert_array_equal(delta, 0)
        elif other == layer:
            np.testing.assert_allclose(delta, np.broadcast_to(coef * v, delta.shape), atol=1e-4)
        else:
            assert np.abs(delta).max() > 1e-3  # the change propagates downstream


def test_reader_installed_before_steering_still_sees_the_steered_stream(tiny_llama):
    v = _vector(tiny_llama)
    text = tiny_llama.chat_prompt(PROMPTS[0])
    with record_activations(tiny_llama, [2]) as plain:
        _forward(tiny_llama, text)
    with record_activations(tiny_llama, [2]) as rec:  # reader first ...
        with steer(tiny_llama, v, 2, 1.0, positions="all"):  # ... steering second
            _forward(tiny_llama, text)
    np.testing.assert_allclose((rec[2][0] - plain[2][0]).numpy()[0], np.broadcast_to(v, rec[2][0].shape[1:]), atol=1e-4)


def test_zero_coefficient_reproduces_unsteered_logits_exactly(tiny_llama):
    text = tiny_llama.chat_prompt(PROMPTS[1])
    base = _forward(tiny_llama, text)
    with steer(tiny_llama, _vector(tiny_llama), 2, 0.0, positions="all"):
        assert torch.equal(_forward(tiny_llama, text), base)


def _recorded_generation(lm, positions, layer=2, coef=3.0):
    v = _vector(lm)
    kwargs = dict(max_new_tokens=4, batch_size=2)
    with record_activations(lm, [layer]) as plain:
        lm.generate(PROMPTS[:1], **kwargs)
    with record_activations(lm, [layer]) as rec, steer(lm, v, layer, coef, positions=positions):
        lm.generate(PROMPTS[:1], **kwargs)
    return plain[layer], rec[layer], coef * v


def test_response_mode_steers_last_prompt_position_then_every_new_token(tiny_llama):
    plain, steered, delta = _recorded_generation(tiny_llama, "response")
    prefill = (steered[0] - plain[0])[0].numpy()
    np.testing.assert_array_equal(prefill[:-1], 0)
    np.testing.assert_allclose(prefill[-1], delta, atol=1e-4)
    assert len(steered) > 1
    assert all(step.shape[1] == 1 for step in steered[1:])  # one new position per decode step


def _decode_step_delta(lm, positions, layer=2, coef=3.0):
    """Change at ``layer`` of one decode step (a forward pass given a KV cache) under steering."""
    ids = torch.tensor([lm.tokenizer(lm.chat_prompt(PROMPTS[0]), add_special_tokens=False)["input_ids"]])
    v = _vector(lm)
    with torch.inference_mode():
        cache = lm.model(ids, use_cache=True).past_key_values
        steps = []
        for steering in (contextlib.nullcontext(), steer(lm, v, layer, coef, positions=positions)):
            step_cache = copy.deepcopy(cache)
            with record_activations(lm, [layer]) as rec, steering:
                lm.model(ids[:, -1:], past_key_values=step_cache, use_cache=True)
            steps.append(rec[layer][0])
    return (steps[1] - steps[0])[0, 0].numpy(), coef * v


def test_response_mode_decode_step_adds_the_vector(tiny_llama):
    delta, expected = _decode_step_delta(tiny_llama, "response")
    np.testing.assert_allclose(delta, expected, atol=1e-4)


def test_prompt_mode_leaves_decode_steps_alone(tiny_llama):
    delta, _ = _decode_step_delta(tiny_llama, "prompt")
    np.testing.assert_array_equal(delta, 0)
    plain, steered, expected = _recorded_generation(tiny_llama, "prompt")
    np.testing.assert_allclose((steered[0] - plain[0])[0].numpy(), np.broadcast_to(expected, plain[0].shape[1:]),
                               atol=1e-4)


def test_token_mask_steers_exactly_the_masked_positions(tiny_llama):
    v = _vector(tiny_llama)
    text = tiny_llama.chat_prompt(PROMPTS[0])
    n = len(tiny_llama.tokenizer(text, add_special_tokens=False)["input_ids"])
    mask = torch.zeros(1, n, dtype=torch.bool)
    mask[0, 3:5] = True
    with record_activations(tiny_llama, [1]) as plain:
        _forward(tiny_llama, text)
    with record_activations(tiny_llama, [1]) as rec, steer(tiny_llama, v, 1, 2.0) as s, s.token_mask(mask):
        _forward(tiny_llama, text)
    delta = (rec[1][0] - plain[1][0])[0].numpy()
    np.testing.assert_allclose(delta[3:5], np.broadcast_to(2.0 * v, (2, v.size)), atol=1e-4)
    np.testing.assert_array_equal(np.delete(delta, [3, 4], axis=0), 0)


def test_several_vectors_and_live_coefficients(tiny_llama):
    lm = tiny_llama
    a, b = _vector(lm, 1), _vector(lm, 2)
    text = lm.chat_prompt(PROMPTS[0])
    with record_activations(lm, [2]) as plain:
        _forward(lm, text)
    with record_activations(lm, [2]) as rec, Steering(lm, positions="all") as s:
        s.add(a, 2, 1.0, name="a")
        s.add(b, 2, 1.0, name="b")
        _forward(lm, text)
        s.set_coefficient("a", -2.0)
        _forward(lm, text)
        with pytest.raises(KeyError, match="installed"):
            s.set_coefficient("c", 1.0)
    first = (rec[2][0] - plain[2][0])[0, 0].numpy()
    second = (rec[2][1] - plain[2][0])[0, 0].numpy()
    np.testing.assert_allclose(first, a + b, atol=1e-4)
    np.testing.assert_allclose(second, -2 * a + b, atol=1e-4)


def test_hooks_removed_even_after_an_exception(tiny_llama):
    blocks = tiny_llama.blocks
    before = [len(b._forward_hooks) + len(b._forward_pre_hooks) for b in blocks]
    with pytest.raises(RuntimeError, match="boom"):
        with steer(tiny_llama, _vector(tiny_llama), 2, 1.0), record_activations(tiny_llama, [0, 1]):
            raise RuntimeError("boom")
    assert [len(b._forward_hooks) + len(b._forward_pre_hooks) for b in blocks] == before
    assert len(tiny_llama.model._forward_pre_hooks) == 0


def test_bad_vector_and_layer_errors(tiny_llama):
    with pytest.raises(ValueError, match="hidden size 64"):
        steer(tiny_llama, np.zeros(5), 1)
    with pytest.raises(ValueError, match=r"use 0..3"):
        steer(tiny_llama, np.zeros(64), 9)
    with pytest.raises(ValueError, match="positions must be one of"):
        steer(tiny_llama, np.zeros(64), 1, positions="middle")


def test_steered_greedy_output_is_the_same_alone_and_in_a_padded_batch(smollm, pirate_vector):
    layer, vector = pirate_vector
    questions = ["How do I boil an egg?", "Why is the sky blue? Please explain it to a child in a few sentences.", "Hi"]
    with steer(smollm, vector, layer, 4.0):
        alone = smollm.generate(questions[:1], max_new_tokens=24)
        batch = smollm.generate(questions, max_new_tokens=24, batch_size=3)
    assert batch[0] == alone[0]
    plain = smollm.generate(questions[:1], max_new_tokens=24)
    assert plain[0] != alone[0]  # the vector does change the answer


def test_zero_coefficient_generation_is_identical(smollm, pirate_vector):
    layer, vector = pirate_vector
    questions = ["How do I boil an egg?", "What is a good hobby?"]
    plain = smollm.generate(questions, max_new_tokens=16)
    with steer(smollm, vector, layer, 0.0):
        assert smollm.generate(questions, max_new_tokens=16) == plain


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_non_finite_vector_is_refused_before_anything_is_installed(tiny_llama, bad):
    v = _vector(tiny_llama)
    v[7] = bad
    with pytest.raises(ValueError, match=r"steering vector contains 1 NaN or infinite .*\(7,\)"):
        steer(tiny_llama, v, 2, 1.0)
    installed = Steering(tiny_llama)
    with pytest.raises(ValueError, match="steering vector contains"):
        installed.add(v, 2)
    assert installed.names == []


@pytest.mark.parametrize("coefficient", [np.nan, -np.inf, 1e30])
def test_a_non_finite_or_absurd_coefficient_is_refused(tiny_llama, coefficient):
    with pytest.raises(ValueError, match="coefficient=.* finite number"):
        steer(tiny_llama, _vector(tiny_llama), 2, coefficient)
    with Steering(tiny_llama) as installed:
        installed.add(_vector(tiny_llama), 2, 1.0, name="v")
        with pytest.raises(ValueError, match="coefficient=.* finite number"):
            installed.set_coefficient("v", coefficient)
        assert installed["v"].coefficient == 1.0
