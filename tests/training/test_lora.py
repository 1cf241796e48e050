"""LoRAFineTuner: peft LoRA trained with the steerers' loop, leaving the user's model unchanged."""

from __future__ import annotations

import copy
import json
import sys

import pytest
import torch
from sklearn.base import clone

from steerkit.lm import LanguageModel
from steerkit.training import TrainingDiverged
from steerkit.training import lora as lora_module
from steerkit.training.lora import LoRAFineTuner, attention_query_value_modules, lora_widths, rank_matching

from tests.conftest import build_tiny, tiny_config

QUESTIONS = ["What is red?", "Name a fruit.", "Say hi.", "Count to one."]
ANSWERS = ["Apple", "Pear", "Hello", "One"]  # one token each in the SmolLM2 tokenizer


def quick(lm, **params) -> LoRAFineTuner:
    """One optimiser step over the four examples."""
    settings = dict(rank=4, learning_rate=1e-2, batch_size=4, gradient_accumulation=1, progress=False)
    return LoRAFineTuner(lm, **{**settings, **params})


def snapshot(lm) -> dict:
    """Everything fit could leave behind on the model: weights, module types, flags, attributes."""
    return {"weights": {k: v.clone() for k, v in lm.model.state_dict().items()},
            "modules": [(name, type(module)) for name, module in lm.model.named_modules()],
            "requires_grad": [p.requires_grad for p in lm.model.parameters()],
            "attributes": sorted(vars(lm.model)), "training": lm.model.training}


def assert_unchanged(lm, before: dict) -> None:
    after = snapshot(lm)
    assert after["modules"] == before["modules"]
    assert after["requires_grad"] == before["requires_grad"]
    assert after["attributes"] == before["attributes"]
    assert after["training"] == before["training"]
    assert after["weights"].keys() == before["weights"].keys()
    assert all(torch.equal(after["weights"][k], before["weights"][k]) for k in before["weights"])


@pytest.fixture(scope="module")
def lively_llama(tokenizer):
    """A tiny Llama initialised with std 0.3 instead of 0.02: the default init gives almost
    uniform logits over 49k tokens, which a LoRA cannot sharpen in a test's few steps."""
    from transformers import AutoModelForCausalLM

    config = tiny_config("llama", len(tokenizer))
    config.initializer_range = 0.3
    torch.manual_seed(0)
    return LanguageModel(AutoModelForCausalLM.from_config(config).eval(), tokenizer, name="tiny-llama-lively")


@pytest.fixture(scope="module")
def memorised(lively_llama):
    """``(base answers, model snapshot before fit, fitted tuner)`` of a 30-step memorisation run."""
    lm = lively_llama
    base_answers = lm.generate(QUESTIONS, max_new_tokens=1)
    before = snapshot(lm)
    tuner = LoRAFineTuner(lm, rank=8, learning_rate=0.05, warmup_ratio=0.0, epochs=30, batch_size=4,
                          gradient_accumulation=1, progress=False).fit(QUESTIONS, ANSWERS)
    return base_answers, before, tuner


def test_parameter_count_is_rank_times_widths_of_the_query_and_value_projections(tiny_llama):
    config = tiny_llama.model.config
    head_dim = config.hidden_size // config.num_attention_heads
    q_width = config.hidden_size + config.num_attention_heads * head_dim  # d_in + d_out of q_proj
    v_width = config.hidden_size + config.num_key_value_heads * head_dim
    tuner = quick(tiny_llama, rank=3).fit(QUESTIONS, ANSWERS)
    assert tuner.n_trainable_parameters_ == 3 * config.num_hidden_layers * (q_width + v_width)
    assert set(tuner.adapter_config_.target_modules) == {f"model.layers.{i}.self_attn.{p}"
                                                         for i in range(3) for p in ("q_proj", "v_proj")}
    assert sum(lora_widths(tiny_llama).values()) == config.num_hidden_layers * (q_width + v_width)
    listed = quick(tiny_llama, rank=2, target_modules=["o_proj"]).fit(QUESTIONS, ANSWERS)
    assert listed.n_trainable_parameters_ == 2 * 3 * (64 + 64)


def test_default_targets_use_the_fused_projection_when_there_is_no_q_proj(tokenizer):
    gpt2 = build_tiny("gpt2", tokenizer)
    assert attention_query_value_modules(gpt2) == [f"transformer.h.{i}.attn.c_attn" for i in range(3)]
    assert sum(lora_widths(gpt2).values()) == 3 * (64 + 3 * 64)  # Conv1D weight (d_in, 3 d)


def test_rank_matching_picks_the_largest_rank_not_above_the_count(tiny_llama):
    per_rank = sum(lora_widths(tiny_llama).values())  # 3 blocks x (128 + 96) = 672
    assert per_rank == 672
    assert rank_matching(tiny_llama, 5 * per_rank) == 5
    assert rank_matching(tiny_llama, 6 * per_rank - 1) == 5
    # a LowRankSteerer of rank 8 on the 3 block outputs: W_down and W_up, 2 x 64 x 8 each
    assert rank_matching(tiny_llama, 3 * 2 * 64 * 8) == 4
    with pytest.warns(UserWarning, match="rank-1 LoRA trains 672 parameters.*more than the 600"):
        assert rank_matching(tiny_llama, 600) == 1
    with pytest.raises(ValueError, match="n_parameters must be a positive integer"):
        rank_matching(tiny_llama, 0)


def test_fit_memorises_the_answers(memorised):
    base_answers, _, tuner = memorised
    assert sum(a == t for a, t in zip(base_answers, ANSWERS)) == 0
    assert tuner.score(QUESTIONS, ANSWERS, max_new_tokens=1) == 1.0
    assert tuner.history_.loss[-1] < tuner.history_.loss[0] / 5
    assert len(tuner.history_.loss) == 30 and tuner.fit_seconds_ > 0


def test_the_base_model_is_unchanged_after_fit_and_outside_generate(memorised, lively_llama):
    base_answers, before, tuner = memorised
    assert_unchanged(lively_llama, before)
    assert lively_llama.generate(QUESTIONS, max_new_tokens=1) == base_answers
    assert tuner.generate(QUESTIONS, max_new_tokens=1) == ANSWERS  # adapted inside the call ...
    assert_unchanged(lively_llama, before)  # ... and not after it
    assert lively_llama.generate(QUESTIONS, max_new_tokens=1) == base_answers


def test_a_diverged_fit_removes_the_adapters(tiny_llama, monkeypatch):
    before = snapshot(tiny_llama)
    monkeypatch.setattr(lora_module, "completion_loss", lambda *args: (torch.tensor(float("nan")), 1))
    with pytest.raises(TrainingDiverged):
        quick(tiny_llama).fit(QUESTIONS, ANSWERS)
    assert_unchanged(tiny_llama, before)


def test_a_failure_after_peft_injected_the_adapters_removes_them(tiny_llama, monkeypatch):
    from peft.tuners.lora import LoraModel

    def fail(*args, **kwargs):
        raise RuntimeError("after injection")

    before = snapshot(tiny_llama)
    monkeypatch.setattr(LoraModel, "_cast_adapter_dtype", fail)  # get_peft_model calls it after injecting
    with pytest.raises(RuntimeError, match="after injection"):
        quick(tiny_llama).fit(QUESTIONS, ANSWERS)
    assert_unchanged(tiny_llama, before)


def test_same_seed_same_adapter_and_clone_refits_it(tiny_llama):
    first = quick(tiny_llama, seed=3).fit(QUESTIONS, ANSWERS)
    again = clone(first).fit(QUESTIONS, ANSWERS)
    other = quick(tiny_llama, seed=4).fit(QUESTIONS, ANSWERS)
    assert first.get_params()["seed"] == 3 and first.adapter_state_.keys() == again.adapter_state_.keys()
    assert all(torch.equal(first.adapter_state_[k], again.adapter_state_[k]) for k in first.adapter_state_)
    assert not all(torch.equal(first.adapter_state_[k], other.adapter_state_[k]) for k in first.adapter_state_)


@pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")
def test_save_load_round_trip_in_peft_format(tiny_llama, tmp_path):
    from peft import PeftModel

    tuner = quick(tiny_llama, learning_rate=0.5).fit(QUESTIONS, ANSWERS)
    path = tuner.save(tmp_path / "adapter")
    assert {"adapter_model.safetensors", "adapter_config.json", "steerkit.json"} <= {p.name for p in path.iterdir()}
    assert json.loads((path / "steerkit.json").read_text())["n_blocks"] == 3
    loaded = LoRAFineTuner.load(path, tiny_llama, progress=False)
    assert loaded.get_params(deep=False) == tuner.get_params(deep=False)
    assert all(torch.equal(loaded.adapter_state_[k], v) for k, v in tuner.adapter_state_.items())
    assert loaded.generate(QUESTIONS, max_new_tokens=5) == tuner.generate(QUESTIONS, max_new_tokens=5)
    ids = tiny_llama.tokenizer(QUESTIONS[0], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        base = tiny_llama.model(ids).logits
        with tuner.installed():
            adapted = tiny_llama.model(ids).logits
        by_peft = PeftModel.from_pretrained(copy.deepcopy(tiny_llama.model), str(path))(ids).logits
    assert not torch.allclose(adapted, base)
    torch.testing.assert_close(by_peft, adapted, rtol=0, atol=0)


def test_load_refuses_another_model(tiny_llama, tokenizer, tmp_path):
    path = quick(tiny_llama).fit(QUESTIONS, ANSWERS).save(tmp_path / "adapter")
    with pytest.raises(ValueError, match=r"trained on 'tiny-llama' with model .*'tiny-qwen2'.*load it onto the model"):
        LoRAFineTuner.load(path, build_tiny("qwen2", tokenizer))


def test_save_refuses_to_replace_a_directory_it_did_not_write(tiny_llama, tmp_path):
    tuner = quick(tiny_llama).fit(QUESTIONS, ANSWERS)
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="is not a saved LoRAFineTuner: choose a new directory"):
        tuner.save(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_bad_parameters_give_one_line_errors(tiny_llama):
    for params, message in [({"rank": 0}, "rank must be a positive integer"),
                            ({"lora_alpha": -1.0}, "lora_alpha must be a positive number"),
                            ({"target_modules": "q_proj"}, "target_modules must be None or a list"),
                            ({"target_modules": ["nope"]}, r"target_modules \['nope'\] matches no module"),
                            ({"target_modules": ["input_layernorm"]}, "no 2-D weight")]:
        with pytest.raises(ValueError, match=message) as error:
            quick(tiny_llama, **params).fit(QUESTIONS, ANSWERS)
        assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="needs y"):
        quick(tiny_llama).fit(QUESTIONS)


def test_missing_peft_says_how_to_install_it(tiny_llama, monkeypatch):
    monkeypatch.setitem(sys.modules, "peft", None)  # makes `import peft` raise ImportError
    with pytest.raises(ImportError, match=r"^LoRAFineTuner needs the peft package: install it with "
                                          r"`pip install 'steerkit\[lora\]'`$"):
        quick(tiny_llama).fit(QUESTIONS, ANSWERS)
