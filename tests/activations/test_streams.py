"""Token-level activation streams: shard sizes, resume, padding invariance, seeded loader."""

import numpy as np
import pytest
import torch

from steerkit.activations import streams
from steerkit.activations.streams import TokenStream, write_activation_stream
from steerkit.lm.hooks import record_activations
from steerkit.lm.sites import Site

TEXTS = [f"Text number {i} talks about {'ships ' * (i % 5)}and the sea." for i in range(13)]


def _all_rows(stream):
    acts, ids = zip(*(stream.read_shard(i) for i in range(len(stream.shards))))
    return np.concatenate(acts), np.concatenate(ids)


def test_shards_hold_each_real_token_once_with_its_unbatched_activation(tiny_llama, tmp_path):
    stream = write_activation_stream(tiny_llama, Site(2), TEXTS, tmp_path / "s", shard_tokens=50, batch_size=4,
                                     progress=False)
    sizes = [n for _, n in stream.shards]
    assert all(n == 50 for n in sizes[:-1]) and 0 < sizes[-1] <= 50
    acts, ids = _all_rows(stream)
    special = set(tiny_llama.tokenizer.all_special_ids)
    expected_ids, expected_acts = [], []
    for text in TEXTS:  # one text at a time: no padding at all
        tokens = tiny_llama.tokenizer(text, add_special_tokens=tiny_llama.adds_special_tokens)["input_ids"]
        with torch.inference_mode(), record_activations(tiny_llama, [Site(2)]) as records:
            tiny_llama.model(input_ids=torch.tensor([tokens]))
        keep = [i for i, t in enumerate(tokens) if t not in special]
        expected_ids += [tokens[i] for i in keep]
        expected_acts.append(records[Site(2)][0][0, keep].numpy())
    np.testing.assert_array_equal(ids, expected_ids)
    np.testing.assert_allclose(acts, np.concatenate(expected_acts), atol=1e-5)
    assert len(stream) == len(ids) and stream.d == tiny_llama.hidden_size


def test_resume_after_interruption_gives_identical_shards(tiny_llama, tmp_path, monkeypatch):
    whole = write_activation_stream(tiny_llama, 1, TEXTS, tmp_path / "whole", shard_tokens=37, batch_size=3,
                                    progress=False)
    real_write = streams._write_shard
    calls = {"n": 0}

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_write(*args, **kwargs)

    monkeypatch.setattr(streams, "_write_shard", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_activation_stream(tiny_llama, 1, TEXTS, tmp_path / "resumed", shard_tokens=37, batch_size=3,
                                progress=False)
    monkeypatch.setattr(streams, "_write_shard", real_write)
    with pytest.raises(ValueError, match="unfinished"):
        TokenStream(tmp_path / "resumed")
    resumed = write_activation_stream(tiny_llama, 1, TEXTS, tmp_path / "resumed", shard_tokens=37, batch_size=3,
                                      progress=False)
    assert [n for _, n in resumed.shards] == [n for _, n in whole.shards]
    for i in range(len(whole.shards)):
        for got, want in zip(resumed.read_shard(i), whole.read_shard(i)):
            np.testing.assert_array_equal(got, want)


def test_changed_settings_are_refused(tiny_llama, tmp_path):
    write_activation_stream(tiny_llama, 1, TEXTS, tmp_path / "s", shard_tokens=40, progress=False)
    with pytest.raises(ValueError, match="shard_tokens"):
        write_activation_stream(tiny_llama, 1, TEXTS, tmp_path / "s", shard_tokens=41, progress=False)


def test_loader_covers_every_token_once_per_epoch_and_is_seeded(tiny_llama, tmp_path):
    stream = write_activation_stream(tiny_llama, 1, TEXTS, tmp_path / "s", shard_tokens=20, progress=False)
    acts, _ = _all_rows(stream)
    epoch = list(stream.batches(16, seed=3, shards_at_once=2))
    assert all(len(batch) == 16 for batch in epoch[:-1])
    rows = np.concatenate(epoch)
    key = lambda a: a[np.lexsort(a.T[::-1])]  # noqa: E731  (row-sorted copy)
    np.testing.assert_array_equal(key(rows), key(acts))
    np.testing.assert_array_equal(rows, np.concatenate(list(stream.batches(16, seed=3, shards_at_once=2))))
    assert not np.array_equal(rows, np.concatenate(list(stream.batches(16, seed=4, shards_at_once=2))))
    assert not np.array_equal(rows, acts)
