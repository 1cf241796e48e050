import numpy as np
import pandas as pd
import pytest

from steerkit.activations import ActivationSet


def make_set(seed=0, n_questions=3, n_pairs=2, layers=4, d=5):
    rng = np.random.default_rng(seed)
    rows = [(q, p, q * n_pairs + p, y) for q in range(n_questions) for p in range(n_pairs) for y in (1, 0)]
    q, p, c, y = map(np.array, zip(*rows))
    perm = rng.permutation(len(rows))  # samples in arbitrary order
    arrays = {pos: rng.normal(size=(len(rows), layers, d)).astype(np.float32) for pos in ("prompt_last", "response_avg")}
    samples = pd.DataFrame({"question": [f"q{i}" for i in q[perm]], "response": ["r"] * len(rows)})
    return ActivationSet({k: v[perm] for k, v in arrays.items()}, y[perm], q[perm], p[perm], c[perm],
                         model_name="m", concept="c", samples=samples)


def test_differences_are_pos_minus_neg_per_contrast():
    s = make_set()
    diffs = s.differences("response_avg")
    X = s.X("response_avg")
    for k, cid in enumerate(s.contrasts()["contrast_id"]):
        pos = X[(s.contrast_ids == cid) & (s.y == 1)][0]
        neg = X[(s.contrast_ids == cid) & (s.y == 0)][0]
        np.testing.assert_allclose(diffs[k], pos - neg)
    assert s.differences("response_avg", layer=2).shape == (6, 5)


def test_save_load_round_trip_without_pickle(tmp_path):
    s = make_set()
    path = s.save(tmp_path / "acts")
    assert path.suffix == ".safetensors"
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())
    loaded = ActivationSet.load(path)
    for pos in s.positions:
        np.testing.assert_array_equal(loaded.X(pos), s.X(pos))
    for name in ("y", "question_ids", "instruction_ids", "contrast_ids"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(s, name))
    assert loaded.model_name == "m" and loaded.concept == "c"
    pd.testing.assert_frame_equal(loaded.samples, s.samples)
    assert "block" in loaded.layer_convention


def test_subset_keeps_alignment():
    s = make_set()
    sub = s.subset(s.question_ids != 1)
    assert len(sub) == 8 and set(sub.question_ids) == {0, 2}
    np.testing.assert_array_equal(sub.X("prompt_last"), s.X("prompt_last")[s.question_ids != 1])
    assert len(sub.samples) == 8


def test_validation_messages(tmp_path):
    s = make_set()
    with pytest.raises(ValueError, match="y must hold 1"):
        ActivationSet(s.activations, s.y + 1, s.question_ids, s.instruction_ids, s.contrast_ids)
    with pytest.raises(ValueError, match="question_ids must have shape"):
        ActivationSet(s.activations, s.y, s.question_ids[:3], s.instruction_ids, s.contrast_ids)
    with pytest.raises(KeyError, match="available"):
        s.X("nowhere")
    bad = ActivationSet(s.activations, s.y, s.question_ids, s.instruction_ids, np.zeros_like(s.contrast_ids))
    with pytest.raises(ValueError, match="exactly one positive and one negative"):
        bad.differences()
    with pytest.raises(FileNotFoundError):
        ActivationSet.load(tmp_path / "nothing.safetensors")


def test_saved_files_respect_the_umask(tmp_path):
    import os
    import stat

    path = make_set().save(tmp_path / "acts")
    mode = stat.S_IMODE(os.stat(path).st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_activations_are_refused_naming_the_position(value):
    s = make_set()
    arrays = dict(s.activations)
    arrays["prompt_last"] = arrays["prompt_last"].copy()
    arrays["prompt_last"][4, 1, 3] = value
    with pytest.raises(ValueError, match=r"activations\['prompt_last'\] contains 1 NaN or infinite .*\(4, 1, 3\)"):
        ActivationSet(arrays, s.y, s.question_ids, s.instruction_ids, s.contrast_ids)


def test_load_names_the_file_when_its_content_is_refused(tmp_path):
    import json

    from safetensors.numpy import load_file, save_file

    path = make_set().save(tmp_path / "acts")
    meta = {"model_name": "m", "concept": "c", "layer_convention": "x", "samples": [{"question": "q"}] * 3}
    save_file(load_file(str(path)), str(path), metadata={"steerkit": json.dumps(meta)})
    with pytest.raises(ValueError, match=r"acts.safetensors: samples has 3 rows, activations have 12"):
        ActivationSet.load(path)
