"""File input/output.

Every file steerkit writes goes through here (temp file + rename), and safetensors files are
read here, so that a damaged file gives one error line naming it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any, Iterator

import numpy as np

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    If the body raises (or the process is interrupted), the temporary file is removed and
    an existing file at ``path`` is left untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = target.parent / f".{target.name}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        yield tmp_path
        # Writers such as safetensors create owner-only files; outputs get the usual umask mode.
        os.chmod(tmp_path, 0o666 & ~_UMASK)
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_pair(first: str | os.PathLike, second: str | os.PathLike) -> Iterator[tuple[Path, Path]]:
    """Yield temporary paths beside ``first`` and ``second``; on success ``first`` is renamed
    into place, then ``second`` (as :func:`atomic_path`).

    For a data file (``first``) and the sidecar describing it (``second``): when the body
    raises, neither existing file is touched, and an interruption between the two renames
    leaves the new data with the old sidecar, never a new sidecar with old data.
    """
    with atomic_path(second) as second_tmp:
        with atomic_path(first) as first_tmp:
            yield first_tmp, second_tmp


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory beside ``path``; on success it replaces ``path``.

    Used for multi-file artefacts (a converted model). An existing directory at ``path`` is
    only removed after the new one is complete.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield tmp
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
            os.replace(target, old / "x")
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _standard_json(obj: Any) -> Any:
    """``obj`` with numpy scalars and arrays as Python values and NaN/inf as ``None``.

    Recurses into dicts (values), lists and tuples; everything else is returned as is.
    """
    if isinstance(obj, np.ndarray):
        obj = obj.tolist()
    elif isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {key: _standard_json(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_standard_json(value) for value in obj]
    return obj


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented UTF-8 standard JSON, atomically.

    NaN and infinities (which ``json`` would write as the non-standard ``NaN``/``Infinity``)
    become ``null`` and numpy values plain numbers (:func:`_standard_json`); anything left that
    is not standard JSON raises instead of being written.
    """
    text = json.dumps(_standard_json(obj), indent=2, ensure_ascii=False, allow_nan=False)
    with atomic_path(path) as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` as UTF-8, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def read_safetensors(path: str | os.PathLike, remedy: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """All tensors and the string metadata of a safetensors file.

    Parameters
    ----------
    path : an existing file.
    remedy : what to do when the file is damaged, for the message (``"re-create it with ..."``).

    Returns
    -------
    tensors : ``{name: ndarray}``; floating-point tensors of any width (bfloat16 and float16
        included, which numpy cannot read directly) come back as float32.
    metadata : ``{key: str}``, empty when the file has none.

    Raises
    ------
    ValueError
        One line naming the file when it is empty, truncated or not a safetensors file.
    """
    import torch
    from safetensors import SafetensorError, safe_open

    def as_array(tensor: torch.Tensor) -> np.ndarray:
        return (tensor.to(torch.float32) if tensor.is_floating_point() else tensor).numpy()

    try:
        with safe_open(str(path), framework="pt") as handle:
            return {name: as_array(handle.get_tensor(name)) for name in handle.keys()}, handle.metadata() or {}
    except SafetensorError as err:
        reason = " ".join(str(err).split())
        raise ValueError(f"{path} is not a readable safetensors file ({reason}); {remedy}") from None
