import copy

import numpy as np
import pytest
import torch

from steerkit.lm import Site, intervene, record_activations
from steerkit.lm.interventions import Ablate, AddVector, LowRank, SetProjection, Window

RNG = np.random.default_rng(0)
V = RNG.normal(size=64).astype(np.float32)
U = V / np.linalg.norm(V)
H = RNG.normal(size=(2, 5, 64)).astype(np.float32)


def _apply(intervention):
    with torch.no_grad():
        return intervention(torch.tensor(H)).numpy()


def test_add_vector_math_and_live_coefficient():
    add = AddVector(V, site=1, coefficient=2.0)
    np.testing.assert_allclose(_apply(add), H + 2.0 * V, atol=1e-6)
    add.set_coefficient(-1.5)
    np.testing.assert_allclose(_apply(add), H - 1.5 * V, atol=1e-6)
    add.coefficient = 0.5
    np.testing.assert_allclose(_apply(add), H + 0.5 * V, atol=1e-6)


def test_ablate_and_set_projection_math():
    ablated = _apply(Ablate(3 * V, site=1))
    np.testing.assert_allclose(ablated, H - np.einsum("btd,d->bt", H, U)[..., None] * U, atol=1e-5)
    np.testing.assert_allclose(ablated @ U, 0, atol=1e-5)
    projected = _apply(SetProjection(V, 4.0, site=1))
    np.testing.assert_allclose(projected @ U, 4.0, atol=1e-5)
    np.testing.assert_allclose(projected - np.outer(projected @ U, U).reshape(H.shape), ablated, atol=1e-5)


@pytest.mark.parametrize("activation, fn", [("silu", lambda x: x / (1 + np.exp(-x))), ("relu", lambda x: np.maximum(x, 0)),
                                            ("tanh", np.tanh), ("linear", lambda x: x)])
def test_low_rank_math(activation, fn):
    low = LowRank(64, 4, site=Site(1, "mlp"), activation=activation)
    np.testing.assert_array_equal(_apply(low), H)  # W_up = 0: an exact no-op
    with torch.no_grad():
        low.W_up.normal_()
    down, up = low.W_down.detach().numpy(), low.W_up.detach().numpy()
    np.testing.assert_allclose(_apply(low), H + fn(H @ down.T) @ up.T, rtol=1e-4, atol=1e-4)


def test_intervention_argument_errors(tiny_llama):
    with pytest.raises(ValueError, match="ablation direction is the zero vector"):
        Ablate(np.zeros(64), site=1)
    with pytest.raises(ValueError, match="steering vector contains 1 NaN"):
        AddVector(np.where(np.arange(64) == 3, np.nan, V), site=1)
    with pytest.raises(ValueError, match="coefficient=.* finite number"):
        AddVector(V, site=1).set_coefficient(np.inf)
    with pytest.raises(ValueError, match="activation must be one of"):
        LowRank(64, site=1, activation="softplus")
    with pytest.raises(ValueError, match="positions must be one of"):
        AddVector(V, site=1, positions="middle")
    with pytest.raises(ValueError, match="start < end"):
        Window(3, 3)
    with pytest.raises(ValueError, match="width 5 but tiny-llama has hidden size 64"):
        with intervene(tiny_llama, [AddVector(np.ones(5), site=1)]):
            pass


def _padded_batch(lm):
    long = lm.tokenizer("one two three four five six seven", add_special_tokens=False)["input_ids"]
    short = long[:4]
    pad = len(long) - len(short)
    ids = torch.tensor([long, [lm.tokenizer.pad_token_id] * pad + short])
    mask = torch.tensor([[1] * len(long), [0] * pad + [1] * len(short)])
    return ids, mask, pad


def _changed(lm, positions, ids, mask, **forward):
    """(B, T) bool: where the residual stream at layer 1 is changed by an AddVector there."""
    with torch.inference_mode():
        with record_activations(lm, [1]) as plain:
            lm.model(ids, attention_mask=mask, **copy.deepcopy(forward))
        with record_activations(lm, [1]) as rec, intervene(lm, [AddVector(V, site=1, positions=positions)]):
            lm.model(ids, attention_mask=mask, **copy.deepcopy(forward))
    return (rec[1][0] - plain[1][0]).abs().amax(-1).numpy() > 0


def test_position_policies_in_a_left_padded_prefill(tiny_llama):
    ids, mask, pad = _padded_batch(tiny_llama)
    width = ids.shape[1]
    expected = {"all": np.ones((2, width), bool), "prompt": np.ones((2, width), bool)}
    last = np.zeros((2, width), bool)
    last[:, -1] = True
    expected.update(response=last, last=last)
    first = np.zeros((2, width), bool)
    first[0, 0] = first[1, pad] = True
    expected["first"] = first
    window = np.zeros((2, width), bool)
    window[0, 1:3] = window[1, pad + 1 : pad + 3] = True
    expected[Window(1, 3)] = window
    explicit = torch.zeros((2, width), dtype=torch.bool)
    explicit[1, -2] = True
    for positions, want in expected.items():
        np.testing.assert_array_equal(_changed(tiny_llama, positions, ids, mask), want, err_msg=str(positions))
    np.testing.assert_array_equal(_changed(tiny_llama, explicit, ids, mask), explicit.numpy())


def test_position_policies_in_a_decode_step(tiny_llama):
    ids, mask, pad = _padded_batch(tiny_llama)
    with torch.inference_mode():
        cache = tiny_llama.model(ids, attention_mask=mask, use_cache=True).past_key_values
    new_token, new_mask = ids[:, -1:], torch.cat([mask, torch.ones((2, 1), dtype=torch.long)], 1)
    n_real = new_mask.sum(1)  # the new token's absolute position is n_real - 1: 7 and 4
    step = dict(past_key_values=cache, use_cache=True)
    for positions, want in {"all": [True, True], "prompt": [False, False], "response": [True, True],
                            "last": [True, True], "first": [False, False],
                            Window(int(n_real[1]) - 1, int(n_real[1])): [False, True]}.items():
        changed = _changed(tiny_llama, positions, new_token, new_mask, **step)
        np.testing.assert_array_equal(changed[:, 0], want, err_msg=str(positions))


def test_a_wrongly_shaped_token_mask_is_refused(tiny_llama):
    ids, mask, _ = _padded_batch(tiny_llama)
    with pytest.raises(ValueError, match=r"token mask has shape \(2, 3\).*\(2, 7\)"):
        _changed(tiny_llama, torch.ones((2, 3), dtype=torch.bool), ids, mask)


def test_gradients_flow_into_low_rank(tiny_llama):
    low = LowRank(64, 4, site=Site(2, "mlp"))
    ids, mask, _ = _padded_batch(tiny_llama)
    with intervene(tiny_llama, [low]):
        tiny_llama.model(ids, attention_mask=mask).logits.sum().backward()
    assert low.W_up.grad is not None and low.W_up.grad.abs().max() > 0


def _hook_counts(lm):
    modules = [lm.model.base_model, *lm.blocks, *(b.self_attn for b in lm.blocks), *(b.mlp for b in lm.blocks)]
    return [len(m._forward_hooks) + len(m._forward_pre_hooks) for m in modules]


def test_interventions_removed_on_exit_after_an_exception(tiny_llama):
    before = _hook_counts(tiny_llama)
    with pytest.raises(RuntimeError, match="boom"):
        with intervene(tiny_llama, [Ablate(V, site=Site(1, "attn")), AddVector(V, site=0)],
                       per_row=[[LowRank(64, site=Site(3, "mlp"))], None]):
            assert _hook_counts(tiny_llama) != before
            raise RuntimeError("boom")
    assert _hook_counts(tiny_llama) == before


def test_a_site_that_cannot_be_installed_leaves_no_hook_behind(tiny_llama):
    """Sites are installed one after another; when one fails (a sublayer that cannot be found),
    the ones already installed must come off again, or they would steer every later call."""
    from steerkit.lm import LanguageModel, SublayerNotFoundError

    from steerkit.steering import Steering

    lm = LanguageModel(tiny_llama.model, tiny_llama.tokenizer, mlp_path="nope")
    before = _hook_counts(lm)
    steering = Steering(lm, positions="all")
    for site in (Site(1), Site(2), Site(3), Site(2, "mlp")):
        steering.add(V, site)
    with pytest.raises(SublayerNotFoundError):
        with steering:
            pass
    assert _hook_counts(lm) == before
