"""One steerkit process at a time per file or folder: an OS lock that dies with its process."""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def exclusive(lock: str | os.PathLike, what: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive OS lock on the file ``lock`` (created, with its folder, if missing)
    while the block runs; ``what`` names the guarded file or folder in the error.

    The OS drops the lock when its process ends, even by a kill, so a dead run never leaves a
    stale lock (the empty lock file stays). A second process, or a second ``exclusive`` on
    the same file in this process, gets a one-line ValueError instead of waiting.
    """
    lock = Path(lock)
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ValueError(f"another steerkit process is using {what} (lock file {lock}); wait for it to finish, "
                             "or give this run another output folder or storage") from None
        yield
