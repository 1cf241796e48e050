"""Steering-vector files: safetensors tensor plus a JSON sidecar (no pickle)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from steerkit._io import atomic_path, write_json

SIDECAR_KEYS = ("model", "layer", "construction", "concept", "hidden_size", "coefficient")


def _paths(path: str | os.PathLike) -> tuple[Path, Path]:
    path = Path(path)
    if path.suffix in (".safetensors", ".json"):
        path = path.with_suffix("")
    return path.with_suffix(".safetensors"), path.with_suffix(".json")


def save_vector(path: str | os.PathLike, vector, **metadata) -> Path:
    """Write ``vector`` to ``<path>.safetensors`` and its metadata to ``<path>.json``.

    ``vector`` is ``(d,)`` for one layer or ``(L + 1, d)`` for all layers (float32, activation
    units). ``metadata`` should carry ``model, layer, construction, concept, coefficient``;
    ``hidden_size`` and ``shape`` are filled in. Both files are written atomically.
    """
    array = np.ascontiguousarray(np.asarray(vector, dtype=np.float32))
    if array.ndim not in (1, 2):
        raise ValueError(f"a steering vector is (d,) or (n_layers, d); got shape {array.shape}")
    tensor_path, sidecar_path = _paths(path)
    sidecar = {key: metadata.pop(key, None) for key in SIDECAR_KEYS}
    sidecar.update(metadata)
    sidecar["hidden_size"] = int(array.shape[-1])
    sidecar["shape"] = list(array.shape)
    with atomic_path(tensor_path) as tmp:
        save_file({"vector": array}, str(tmp))
    write_json(sidecar_path, sidecar)
    return tensor_path


def load_vector(path: str | os.PathLike) -> tuple[np.ndarray, dict]:
    """Read a vector written by :func:`save_vector`: ``(array, sidecar dict)``."""
    tensor_path, sidecar_path = _paths(path)
    if not tensor_path.is_file():
        raise FileNotFoundError(f"no steering vector file at {tensor_path}")
    vector = load_file(str(tensor_path))["vector"]
    sidecar = json.loads(sidecar_path.read_text(encoding="utf-8")) if sidecar_path.is_file() else {}
    return vector, sidecar
