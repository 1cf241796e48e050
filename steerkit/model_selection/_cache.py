"""Evaluation cache: judged answers per (configuration, question).

Generation is padding-invariant and judges score each answer on its own, so an answer judged
once for a configuration is valid in any question subset: cross-validation folds, a resumed
search and several searches over the same grid all reuse it.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import joblib
import pandas as pd

from steerkit import _caches
from steerkit._caches import CORRUPT_CACHE_ERRORS, warn_corrupt
from steerkit._io import write_json
from steerkit.metrics._scorer import SCORE_COLUMNS

# settings that change how fast answers come, never what they are (generation and judging are
# padding-invariant): left out of cache keys and fingerprints, so e.g. a lower batch size after
# an out-of-memory crash resumes the search
NOT_ANSWER_PARAMS = ("batch_size", "progress", "n_jobs")


def param_label(value) -> object:
    """A JSON-friendly label for a parameter value (estimators and models become their repr)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # numpy scalar
        return value.item()
    return repr(value)


def answer_params(params: dict) -> dict:
    """``params`` without :data:`NOT_ANSWER_PARAMS` (nested ones, ``coherence__batch_size``, too)."""
    return {name: value for name, value in params.items() if name.rsplit("__", 1)[-1] not in NOT_ANSWER_PARAMS}


def config_key(params: dict, context: dict | None = None) -> str:
    """Stable text key of a parameter dict (its :func:`answer_params`), independent of key
    order; ``context`` (e.g. the :func:`data_fingerprint` and :func:`judge_fingerprint` it was
    fitted and judged with) becomes part of the key."""
    labels = {k: param_label(v) for k, v in sorted(answer_params(params).items())}
    return json.dumps(labels if context is None else {"params": labels, "context": context}, sort_keys=True)


def digest(obj) -> str:
    """:func:`steerkit._caches.digest` with parameter values labelled by :func:`param_label`."""
    return _caches.digest(obj, default=param_label)


def data_fingerprint(activations) -> str:
    """Content hash of what a configuration is fitted on: ``ActivationSet.fingerprint()``, or
    joblib's content hash for any other object (``None`` included)."""
    if hasattr(activations, "fingerprint"):
        return activations.fingerprint()
    return joblib.hash(activations)


def judge_fingerprint(scoring) -> str:
    """:func:`digest` of the judge's configuration: its class and every parameter of a
    scikit-learn-style judge (its :func:`answer_params`), else its repr."""
    if hasattr(scoring, "get_params"):
        return digest([type(scoring).__qualname__, answer_params(scoring.get_params(deep=True))])
    return digest(repr(scoring))


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
        """Read a cache written by :meth:`save` (an absent file gives an empty cache, a corrupt
        one an empty cache and a warning); missing scores, written as ``null``, come back as NaN."""
        path = Path(path)
        if not path.is_file():
            return cls()
        try:
            entries = json.loads(path.read_text(encoding="utf-8"))
            for rows in entries.values():
                for row in rows.values():
                    row.update({column: math.nan for column in SCORE_COLUMNS if column in row and row[column] is None})
        except CORRUPT_CACHE_ERRORS as error:
            warn_corrupt(path, error)
            return cls()
        return cls(entries)
