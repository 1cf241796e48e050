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


def save_gguf_control_vector(path: str | os.PathLike, vectors: dict[int, np.ndarray], *, model_hint: str,
                             n_layers: int) -> Path:
    """Write a llama.cpp control vector (GGUF) with ``{steerkit layer: vector (d,)}``.

    llama.cpp adds tensor ``direction.k`` to the output of decoder block ``k`` (0-based,
    after its residual add, at every position) and rejects ``direction.0``; so steerkit layer
    ``l`` (output of block ``l``, 1-based) is written as ``direction.(l-1)`` and layers 0 and 1
    cannot be exported. Scale the vectors by the coefficient you want before writing: llama.cpp
    multiplies them by the SCALE of ``--control-vector-scaled FILE:SCALE``, so load the file at
    scale 1.0 (passing the coefficient again applies it twice).
    ``n_layers`` is the model's block count (``controlvector.layer_count``).
    """
    import gguf

    bad = sorted(layer for layer in vectors if not 2 <= layer <= n_layers)
    if bad:
        raise ValueError(
            f"llama.cpp control vectors can steer layers 2..{n_layers} only (layer l is direction.(l-1) "
            f"and direction.0 is rejected); got {bad}"
        )
    path = Path(path)
    with atomic_path(path) as tmp:
        writer = gguf.GGUFWriter(str(tmp), "controlvector")
        writer.add_string("controlvector.model_hint", model_hint)
        writer.add_uint32("controlvector.layer_count", n_layers)
        for layer in sorted(vectors):
            writer.add_tensor(f"direction.{layer - 1}", np.ascontiguousarray(vectors[layer], dtype=np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    return path


def load_gguf_control_vector(path: str | os.PathLike) -> tuple[dict[int, np.ndarray], dict]:
    """Read a llama.cpp control vector: ``({steerkit layer: vector (d,)}, metadata)``."""
    import gguf

    reader = gguf.GGUFReader(str(path))
    vectors = {}
    for tensor in reader.tensors:
        prefix, _, index = tensor.name.partition(".")
        if prefix != "direction" or not index.isdigit():
            raise ValueError(f"{path}: unexpected tensor {tensor.name!r} in a control vector file")
        vectors[int(index) + 1] = np.array(tensor.data, dtype=np.float32).reshape(-1)
    metadata = {}
    for key in ("general.architecture", "controlvector.model_hint", "controlvector.layer_count"):
        field = reader.get_field(key)
        if field is not None:
            value = field.contents()
            metadata[key] = value
    return vectors, metadata
