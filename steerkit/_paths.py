"""Names that become path components, and output paths that must stay under their folder.

A concept's name (from a concept file, an activation file's metadata or the command line)
becomes a folder or file name. It is checked with :func:`safe_name` before that, and every
path a command writes below an output folder is built with :func:`path_under`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

MAX_NAME_LENGTH = 100  # characters
_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def safe_name(name, *, what: str, source: str | None = None) -> str:
    """Return ``name`` if it is a safe single path component, else raise ``ValueError``.

    Safe: 1 to ``MAX_NAME_LENGTH`` ASCII letters, digits, ``_``, ``-`` and ``.``, starting with
    a letter, digit or ``_`` (so never ``.``, ``..``, a hidden name, an option-like name, a
    separator or an absolute path).

    Parameters
    ----------
    name : the candidate name.
    what : how the user knows it, e.g. ``"field 'name'"`` or ``"argument NAME"``.
    source : the file (or command) it came from; prefixes the message when given.
    """
    if isinstance(name, str) and len(name) <= MAX_NAME_LENGTH and _SAFE_NAME.fullmatch(name):
        return name
    prefix = f"{source}: " if source else ""
    raise ValueError(
        f"{prefix}{what} {name!r} cannot be used as a file or folder name: use 1 to {MAX_NAME_LENGTH} "
        "letters, digits, '_', '-' or '.', starting with a letter, digit or '_' (e.g. 'my_concept')"
    )


def path_under(root: str | os.PathLike, *parts: str) -> Path:
    """``root / parts``, refused with ``ValueError`` unless it resolves inside ``root``.

    Both sides are resolved (symbolic links followed, ``..`` collapsed), so neither a name
    like ``"../x"`` nor a link inside ``root`` pointing elsewhere leads a write out of it.
    The returned path is the unresolved join, for messages the user recognises.
    """
    path = Path(root).joinpath(*parts)
    resolved, top = path.resolve(), Path(root).resolve()
    if resolved != top and top not in resolved.parents:
        raise ValueError(
            f"{path} resolves to {resolved}, outside the output folder {root}: use a plain name "
            "(no '..', no absolute path) and no symbolic link that leads out of the output folder"
        )
    return path
