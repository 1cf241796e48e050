"""The run's cache files: JSON tagged with a digest of everything that produced its content.

A cache made from other inputs is recomputed silently; one that cannot be read (truncated,
not JSON, fields of the wrong type or shape) is a UserWarning naming the file and is then
recomputed too: caches never stop a run.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Callable, TypeVar

T = TypeVar("T")

# what reading a damaged cache raises: bad JSON/UTF-8 (ValueError), missing fields (KeyError),
# fields of the wrong type or shape, unreadable files (OSError)
CORRUPT_CACHE_ERRORS = (ValueError, KeyError, TypeError, AttributeError, IndexError, OSError)


def digest(obj, default: Callable[[object], object] = str) -> str:
    """16 hex digits of the SHA-256 of ``obj`` as sorted JSON (independent of dict key order);
    values JSON cannot hold go through ``default`` (``str`` unless given)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=default).encode()).hexdigest()[:16]


def warn_corrupt(path: str | os.PathLike, error: BaseException) -> None:
    """Warn that the cache at ``path`` is unreadable (``error``) and will be recomputed."""
    warnings.warn(f"cache {path} is corrupt ({type(error).__name__}); it will be recomputed", UserWarning,
                  stacklevel=3)


def read_json_cache(path: str | os.PathLike, key: str, read: Callable[[dict], T]) -> T | None:
    """``read(content)`` of the JSON cache at ``path`` when its ``"digest"`` is ``key``.

    None when there is no file, when it was made from other inputs (another digest), or when
    it is corrupt (then with a warning, see :func:`warn_corrupt`). ``read`` turns the parsed
    file into the cached value and raises one of :data:`CORRUPT_CACHE_ERRORS` on a bad shape.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
        return read(content) if content["digest"] == key else None
    except CORRUPT_CACHE_ERRORS as error:
        warn_corrupt(path, error)
        return None
