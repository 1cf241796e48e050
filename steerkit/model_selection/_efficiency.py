"""Search-efficiency metrics from trial histories: best-so-far curves and trials-to-X%."""

from __future__ import annotations

import numpy as np
import pandas as pd


def best_so_far(scores) -> np.ndarray:
    """Running maximum of trial scores, shape ``(n_trials,)``; NaN trials (pruned or all
    responses missing) do not count but keep their place."""
    scores = np.asarray(scores, dtype=float)
    filled = np.where(np.isnan(scores), -np.inf, scores)
    running = np.maximum.accumulate(filled) if filled.size else filled
    return np.where(np.isneginf(running), np.nan, running)


def trials_to_fraction(scores, fraction: float = 0.95) -> int | None:
    """First trial (1-indexed) whose best-so-far reaches ``fraction`` × the final best.

    This is GRACE's T95 for ``fraction=0.95``. Scores are utilities (0–100, higher is
    better). Returns ``None`` when no trial has a score.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    curve = best_so_far(scores)
    if np.all(np.isnan(curve)):
        return None
    target = fraction * np.nanmax(curve)
    return int(np.argmax(np.nan_to_num(curve, nan=-np.inf) >= target)) + 1


def search_efficiency(histories, fraction: float = 0.95) -> pd.DataFrame:
    """T-fraction and best score per seed, for a list of score sequences (one per seed).

    Each history is a sequence of trial scores in trial order (e.g.
    ``search.history_["score"]``). Returns one row per seed with columns ``seed``,
    ``trials_to_target``, ``best_score``, ``n_trials``; ``frame.trials_to_target.mean()``
    is the paper's averaged T95.
    """
    rows = []
    for seed, scores in enumerate(histories):
        scores = np.asarray(scores, dtype=float)
        rows.append({
            "seed": seed,
            "trials_to_target": trials_to_fraction(scores, fraction),
            "best_score": float(np.nanmax(scores)) if np.isfinite(scores).any() else np.nan,
            "n_trials": int(scores.size),
        })
    return pd.DataFrame(rows)
