import time

import pytest
import torch

from steerkit.lm import load_model
from steerkit.lm.loading import convert_gguf, embedded_gguf_path, resolve_dtype


def test_embedded_model_is_cached_and_loads_fast(smollm):
    assert smollm.n_blocks == 30 and smollm.hidden_size == 576
    assert smollm.block_path == "model.layers"
    start = time.perf_counter()
    folder = convert_gguf(embedded_gguf_path("smollm2-135m-instruct"))
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    assert time.perf_counter() - start < 1.0  # a cache hit does no conversion


def test_bfloat16_load(smollm):
    lm = load_model(dtype="bfloat16")
    assert lm.dtype == torch.bfloat16
    ids = smollm.tokenizer("Hello there", return_tensors="pt")
    with torch.inference_mode():
        a = smollm.model(**ids).logits[0, -1].float()
        b = lm.model(**ids).logits[0, -1].float()
    assert a.argmax() == b.argmax()


def test_bad_dtype_and_missing_gguf_are_clear(tmp_path):
    with pytest.raises(ValueError, match="dtype must be one of"):
        resolve_dtype("float8")
    with pytest.raises(FileNotFoundError, match="GGUF file not found"):
        load_model(str(tmp_path / "missing.gguf"))


def test_local_folder_loads(smollm):
    folder = convert_gguf(embedded_gguf_path("smollm2-135m-instruct"))
    lm = load_model(str(folder))
    assert lm.n_blocks == smollm.n_blocks


def test_chat_prompt_uses_template_and_system(smollm):
    prompt = smollm.chat_prompt("What is 2+2?", "Be brief.")
    assert prompt.startswith("<|im_start|>system\nBe brief.")
    assert prompt.endswith("<|im_start|>assistant\n")
    assert not smollm.adds_special_tokens
