"""Evaluation cache: judged answers per (configuration, question).

Generation is padding-invariant and judges score each answer on its own, so an answer judged
once for a configuration is valid in any question subset: cross-validation folds, a resumed
search and several searches over the same grid all reuse it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from steerkit._io import write_json


def param_label(value) -> object:
    """A JSON-friendly label for a parameter value (estimators and models become their repr)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # numpy scalar
        return value.item()
    return repr(value)


def config_key(params: dict) -> str:
    """Stable text key of a parameter dict, independent of key order."""
    return json.dumps({k: param_label(v) for k, v in sorted(params.items())}, sort_keys=True)


class EvaluationCache:
    """``{config key: {question: judged row}}``, shared (not copied) by ``clone``.

    A row holds the response and its ``concept``, ``coherence``, ``utility`` scores (0–100,
    NaN when missing). Save/load as JSON to reuse a fully evaluated grid across runs.
    """

    def __init__(self, entries: dict | None = None):
        self.entries: dict[str, dict[str, dict]] = entries or {}

    def __sklearn_clone__(self) -> "EvaluationCache":
        return self

    def __len__(self) -> int:
        return sum(len(rows) for rows in self.entries.values())

    def __repr__(self) -> str:
        return f"EvaluationCache(configs={len(self.entries)}, answers={len(self)})"

    def missing(self, key: str, questions: list[str]) -> list[str]:
        """Questions (in order, without repeats) not yet judged for ``key``."""
        known = self.entries.get(key, {})
        return list(dict.fromkeys(q for q in questions if q not in known))

    def store(self, key: str, table: pd.DataFrame) -> None:
        """Remember every row of a judged table (columns ``RESPONSE_COLUMNS``)."""
        rows = self.entries.setdefault(key, {})
        for record in table.to_dict(orient="records"):
            rows[record["question"]] = record

    def table(self, key: str, questions: list[str]) -> pd.DataFrame:
        """The judged rows for ``questions`` (in order; all must be cached)."""
        rows = self.entries[key]
        return pd.DataFrame([rows[q] for q in questions])

    def save(self, path: str | os.PathLike) -> None:
        """Write the cache as JSON (atomically)."""
        write_json(path, self.entries)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "EvaluationCache":
        """Read a cache written by :meth:`save` (an absent file gives an empty cache)."""
        path = Path(path)
        if not path.is_file():
            return cls()
        return cls(json.loads(path.read_text(encoding="utf-8")))
