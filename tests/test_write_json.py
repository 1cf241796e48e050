"""``write_json`` writes standard JSON only."""

import json

import numpy as np

from steerkit._io import write_json


def _strict_load(path):
    def refuse(constant):
        raise AssertionError(f"non-standard JSON constant {constant} in {path.name}")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)


def test_non_finite_floats_become_null_at_any_depth(tmp_path):
    path = tmp_path / "summary.json"
    write_json(path, {"utility": float("nan"), "held_out": {"scores": [1.5, float("inf"), (-float("inf"),)]}})
    assert _strict_load(path) == {"utility": None, "held_out": {"scores": [1.5, None, [None]]}}


def test_numpy_scalars_and_arrays_are_written_as_plain_numbers(tmp_path):
    path = tmp_path / "numbers.json"
    write_json(path, {"layer": np.int64(3), "score": np.float32(0.5), "bad": np.float64("nan"),
                      "vector": np.array([1.0, np.nan]), "ok": np.bool_(True)})
    assert _strict_load(path) == {"layer": 3, "score": 0.5, "bad": None, "vector": [1.0, None], "ok": True}

