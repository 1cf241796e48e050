"""The one line the ``steerkit`` command prints for an error the user can act on, and for a warning."""

from __future__ import annotations

import sys

_PATH_ERROR_HINTS = {  # most specific first: each is an OSError carrying the path in .filename
    FileNotFoundError: "does not exist; check the path",
    IsADirectoryError: "is a folder, not a file; give the path of a file",
    NotADirectoryError: "has a file where a folder is expected; choose another path",
    PermissionError: "is not accessible (permission denied); fix its permissions or choose another path",
    FileExistsError: "already exists; remove it or choose another path",
}


def _path_error_message(err: OSError) -> str:
    """``"<path> <what is wrong>; <what to do>"`` for an OSError raised on a path."""
    for cls, hint in _PATH_ERROR_HINTS.items():
        if isinstance(err, cls):
            return f"{err.filename} {hint}"
    return f"{err.filename}: {err.strerror.lower()}; choose another path"


def _key_error_message(err: KeyError) -> str:
    """A KeyError's own sentence, or one naming the missing key (never the bare repr ``'vector'``)."""
    key = err.args[0] if err.args else None
    if isinstance(key, str) and " " in key:
        return key
    return (f"missing field {key!r} in an input file or setting; re-create the file with this version "
            "of steerkit (if it was, report this as a bug)")


def _module_error_message(err: ModuleNotFoundError) -> str:
    """The library's install hint, or one for a bare ``No module named 'x'``."""
    if str(err) != f"No module named {err.name!r}":
        return str(err)
    return f"the Python module {err.name!r} is not installed; install the package that provides it and re-run"


def _user_error_message(err: Exception) -> str | None:
    """The one-line message for an error the user can act on, or None for a bug (a traceback).

    User errors are ValueErrors (the library's own classes included: ``ConceptError``,
    ``BlocksNotFoundError``, the endpoint errors), OSErrors, missing modules and KeyErrors.
    """
    if isinstance(err, KeyError):
        text = _key_error_message(err)
    elif isinstance(err, ModuleNotFoundError):
        text = _module_error_message(err)
    elif isinstance(err, OSError) and err.filename is not None and err.strerror:
        text = _path_error_message(err)
    elif isinstance(err, (ValueError, OSError)):
        text = str(err)
    else:
        return None
    return " ".join(text.split())


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Print a warning as one ``warning: ...`` line on stderr (no source location)."""
    print("warning: " + " ".join(str(message).split()), file=sys.stderr)
