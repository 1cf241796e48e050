"""Steering-vector files: safetensors tensor plus a JSON sidecar (no pickle)."""

from __future__ import annotations

import json
import numbers
import os
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from steerkit._io import atomic_pair, atomic_path, read_safetensors, write_json
from steerkit._values import check_coefficient, check_finite

SIDECAR_KEYS = ("model", "layer", "construction", "concept", "hidden_size", "coefficient")
TEXT_KEYS = ("model", "construction", "concept", "concept_source", "position", "positions", "component")
"""Sidecar fields that hold a string (or ``null``); ``concept_source`` is the absolute path of
the concept file when the concept did not come from the bundled ones; ``component`` is the
site the vector belongs to at ``layer`` (``"residual"``, ``"attn"`` or ``"mlp"``; absent means
``"residual"``)."""
REMEDY = "re-create it with `steerkit fit`"


def vector_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """The tensor file and the sidecar of the vector at ``path`` (with or without suffix)."""
    path = Path(path)
    if path.suffix in (".safetensors", ".json"):
        path = path.with_suffix("")
    return path.with_suffix(".safetensors"), path.with_suffix(".json")


def check_vector(vector, name: str) -> np.ndarray:
    """``vector`` as an ndarray if it is a steering vector: ``(d,)`` or ``(n_layers, d)``, finite.

    ``name`` says what the vector is (a file name) in the ``ValueError``.
    """
    vector = np.asarray(vector)
    if vector.ndim not in (1, 2):
        raise ValueError(f"{name} must be of shape (d,) or (n_layers, d), got shape {vector.shape}")
    if not np.issubdtype(vector.dtype, np.floating):
        raise ValueError(f"{name} holds {vector.dtype} values; a steering vector holds floating-point numbers")
    return check_finite(vector, name, "fit it again on finite activations")


def check_sidecar(sidecar, shape: tuple[int, ...]) -> None:
    """Raise a ``ValueError`` naming the first sidecar field unfit for a vector of ``shape``.

    ``layer`` must be a non-negative integer (below ``shape[0]`` for an all-layer vector),
    ``coefficient`` a usable strength (:func:`steerkit._values.check_coefficient`),
    ``hidden_size`` and ``shape`` those of the vector, :data:`TEXT_KEYS` strings, ``component`` a
    site component; each may be absent or ``null``.
    """
    if not isinstance(sidecar, dict):
        raise ValueError(f"must be a JSON object, got {type(sidecar).__name__}")
    layer, coefficient = sidecar.get("layer"), sidecar.get("coefficient")
    if layer is not None and (isinstance(layer, bool) or not isinstance(layer, numbers.Integral) or layer < 0):
        raise ValueError(f"field 'layer' must be a non-negative integer, got {layer!r}")
    if layer is not None and len(shape) == 2 and layer >= shape[0]:
        raise ValueError(f"field 'layer' is {layer} but the vector holds layers 0..{shape[0] - 1}")
    if coefficient is not None:
        try:
            check_coefficient(coefficient, "field 'coefficient'")
        except TypeError as err:
            raise ValueError(str(err)) from None
    expected = {"hidden_size": shape[-1], "shape": list(shape)}
    for key, value in expected.items():
        if sidecar.get(key) not in (None, value):
            raise ValueError(f"field {key!r} is {sidecar[key]!r} but the vector's is {value!r}")
    for key in TEXT_KEYS:
        if not isinstance(sidecar.get(key), (str, type(None))):
            raise ValueError(f"field {key!r} must be a string, got {sidecar[key]!r}")
    component = sidecar.get("component")
    if component is not None:
        from steerkit.lm.sites import COMPONENTS  # imports torch, so only for a sidecar that names one

        if component not in COMPONENTS:
            raise ValueError(f"field 'component' must be one of {COMPONENTS}, got {component!r}")


def save_vector(path: str | os.PathLike, vector, **metadata) -> Path:
    """Write ``vector`` to ``<path>.safetensors`` and its metadata to ``<path>.json``.

    ``vector`` is ``(d,)`` for one layer or ``(L + 1, d)`` for all layers (float32, activation
    units, finite). ``metadata`` should carry ``model, layer, construction, concept,
    coefficient`` (and ``concept_source`` for a concept file, ``component`` for a vector of an
    ``"attn"`` or ``"mlp"`` site); ``hidden_size`` and ``shape`` are
    filled in. Both files are written atomically, and neither when a check fails.
    """
    tensor_path, sidecar_path = vector_paths(path)
    array = check_vector(np.ascontiguousarray(vector, dtype=np.float32), "the steering vector")
    sidecar = {key: metadata.pop(key, None) for key in SIDECAR_KEYS}
    sidecar.update(metadata)
    sidecar["hidden_size"] = int(array.shape[-1])
    sidecar["shape"] = list(array.shape)
    try:
        check_sidecar(sidecar, array.shape)
    except ValueError as err:
        raise ValueError(f"cannot save {tensor_path}: sidecar {err}") from None
    with atomic_pair(tensor_path, sidecar_path) as (tensor_tmp, sidecar_tmp):
        save_file({"vector": array}, str(tensor_tmp))
        write_json(sidecar_tmp, sidecar)
    return tensor_path


def load_vector(path: str | os.PathLike) -> tuple[np.ndarray, dict]:
    """Read a vector written by :func:`save_vector`: ``(array, sidecar dict)``.

    The sidecar is optional (``{}`` without one). A damaged tensor file or sidecar raises one
    ``ValueError`` line naming the file and the field.
    """
    tensor_path, sidecar_path = vector_paths(path)
    if not tensor_path.is_file():
        raise FileNotFoundError(f"no steering vector file at {tensor_path}")
    tensors, _ = read_safetensors(tensor_path, REMEDY)
    if "vector" not in tensors:
        raise ValueError(
            f"{tensor_path} holds no 'vector' tensor (found {sorted(tensors)}), so it is not a steerkit "
            f"vector file; {REMEDY}"
        )
    vector = check_vector(tensors["vector"], str(tensor_path))
    sidecar = _read_sidecar(sidecar_path)
    try:
        check_sidecar(sidecar, vector.shape)
    except ValueError as err:
        raise ValueError(f"{sidecar_path}: sidecar {err}; fix the field or delete the sidecar") from None
    return vector, sidecar


def _read_sidecar(path: Path):
    """The parsed JSON sidecar at ``path``, ``{}`` if there is none."""
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err}); fix it or delete it (it is optional)") from None


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
