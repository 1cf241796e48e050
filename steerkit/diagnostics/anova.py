"""Two-way ANOVA of unit difference vectors over the instruction-pair × question grid.

Per layer, with ``u_pq`` the unit difference of pair ``p`` on question ``q`` (``P`` pairs,
``Q`` questions, one observation per cell) and sums of squares summed over the ``d``
dimensions:

    SS_total       = Σ_pq ‖u_pq − ū‖²
    SS_prompt      = Q Σ_p ‖ū_p· − ū‖²        (instruction pair: "prompt" in GRACE)
    SS_question    = P Σ_q ‖ū_·q − ū‖²
    SS_interaction = SS_total − SS_prompt − SS_question   (the residual)

and ``η²_effect = SS_effect / SS_total``. Per dimension this is the classical additive
two-way ANOVA without replication, so the sums equal those of
``anova_lm(ols("value ~ C(pair) + C(question)"))`` added over dimensions.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from steerkit.diagnostics.geometry import _check_ids, unit_differences

EFFECTS = ("prompt", "question", "interaction")
_SHOWN_IDS = 10
_TOTAL_RTOL = 1e-12
"""SS_total below this × the number of cells is rounding noise: all unit vectors equal."""


def _cell_indices(question_ids: np.ndarray, instruction_ids: np.ndarray):
    """Grid coordinates of each contrast; raises on a (question, pair) cell seen twice."""
    questions, q_index = np.unique(question_ids, return_inverse=True)
    pairs, p_index = np.unique(instruction_ids, return_inverse=True)
    cells, counts = np.unique(q_index * pairs.size + p_index, return_counts=True)
    if (counts > 1).any():
        repeated = [(questions[c // pairs.size].item(), pairs[c % pairs.size].item()) for c in cells[counts > 1]]
        raise ValueError(
            "each (question, instruction pair) cell must hold one contrast; repeated (question_id, "
            f"instruction_id) cells: {repeated[:_SHOWN_IDS]}"
        )
    return questions, q_index, pairs, p_index


def _complete_questions(questions, q_index, pairs, p_index) -> np.ndarray:
    """Bool (Q,): questions answered under every pair; warns naming the others."""
    present = np.zeros((questions.size, pairs.size), dtype=bool)
    present[q_index, p_index] = True
    complete = present.all(axis=1)
    if not complete.all():
        dropped = questions[~complete].tolist()
        warnings.warn(
            f"ANOVA needs every question under every instruction pair; dropping {len(dropped)} of "
            f"{questions.size} questions with missing cells ({(~present).sum()} cells missing), "
            f"question_ids: {dropped[:_SHOWN_IDS]}{' ...' if len(dropped) > _SHOWN_IDS else ''}",
            UserWarning,
            stacklevel=4,  # the caller of anova_eta_squared
        )
    return complete


def _unit_grid(D, question_ids, instruction_ids):
    """Unit differences on a complete grid.

    Returns ``grid`` (Q, P, L, d) float64 with questions lacking a cell dropped, and
    ``usable`` (Q, L): the question has a non-zero difference under every pair at that layer.
    Rows of questions that are not usable at a layer are zeroed there.
    """
    units, valid = unit_differences(D)
    n = units.shape[0]
    question_ids = _check_ids(question_ids, n, "question_ids")
    instruction_ids = _check_ids(instruction_ids, n, "instruction_ids")
    questions, q_index, pairs, p_index = _cell_indices(question_ids, instruction_ids)
    complete = _complete_questions(questions, q_index, pairs, p_index)
    rank = np.cumsum(complete) - 1  # new index of each kept question
    keep = complete[q_index]
    grid = np.zeros((int(complete.sum()), pairs.size) + units.shape[1:])
    present = np.zeros(grid.shape[:3], dtype=bool)
    if not keep.all():
        units, valid, q_index, p_index = units[keep], valid[keep], q_index[keep], p_index[keep]
    grid[rank[q_index], p_index] = units
    present[rank[q_index], p_index] = valid
    usable = present.all(axis=1)
    grid *= usable[:, None, :, None]
    return grid, usable


def anova_sums_of_squares(grid: np.ndarray, usable: np.ndarray) -> dict[str, np.ndarray]:
    """Sums of squares per layer of a (Q, P, L, d) grid, using the questions ``usable`` (Q, L).

    Returns ``{"total", "prompt", "question", "interaction", "n_questions"}``, each (L,).
    """
    n_pairs = grid.shape[1]
    n_questions = usable.sum(axis=0).astype(np.float64)  # (L,)
    safe_q = np.maximum(n_questions, 1.0)
    grand = grid.sum(axis=(0, 1)) / (safe_q * n_pairs)[:, None]  # (L, d)
    pair_means = grid.sum(axis=0) / safe_q[:, None]  # (P, L, d)
    question_means = grid.mean(axis=1)  # (Q, L, d)
    # Σ‖u − ū‖² = Σ‖u‖² − N‖ū‖², without a grid-sized temporary (unused rows are zero)
    total = np.einsum("qpld,qpld->l", grid, grid) - n_questions * n_pairs * np.einsum("ld,ld->l", grand, grand)
    pair_dev = pair_means - grand
    question_dev = (question_means - grand) * usable[..., None]
    prompt = n_questions * np.einsum("pld,pld->l", pair_dev, pair_dev)
    question = n_pairs * np.einsum("qld,qld->l", question_dev, question_dev)
    return {"total": total, "prompt": prompt, "question": question,
            "interaction": total - prompt - question, "n_questions": n_questions}


def anova_eta_squared(D, question_ids, instruction_ids) -> pd.DataFrame:
    """GRACE's ANOVA: η² of instruction pair ("prompt"), question and interaction per layer.

    Parameters
    ----------
    D : array of shape (n_contrasts, n_layers, d) or (n_contrasts, d); GRACE uses RA.
    question_ids, instruction_ids : arrays of shape (n_contrasts,)

    Returns
    -------
    DataFrame, one row per layer index, with ``layer``, ``n_questions``, ``n_pairs``,
    ``eta2_prompt``, ``eta2_question``, ``eta2_interaction`` (in [0, 1], summing to 1) and the
    sums of squares ``ss_total``, ``ss_prompt``, ``ss_question``, ``ss_interaction`` (squared
    cosine units, summed over dimensions). η² is NaN on layers with fewer than two usable
    questions, fewer than two pairs, or no variation at all.

    Notes
    -----
    The design must be a full grid. Questions missing a cell (not answered under some pair)
    are dropped from every layer, with a ``UserWarning`` naming them. A zero-norm difference
    has no unit vector, so its question is left out at that layer only (``n_questions``
    shows how many questions each layer used). A cell given twice raises ``ValueError``.
    """
    grid, usable = _unit_grid(D, question_ids, instruction_ids)
    ss = anova_sums_of_squares(grid, usable)
    n_pairs = grid.shape[1]
    n_cells = ss["n_questions"] * n_pairs
    defined = (ss["n_questions"] >= 2) & (n_pairs >= 2) & (ss["total"] > _TOTAL_RTOL * n_cells)
    table = pd.DataFrame({
        "layer": np.arange(usable.shape[1]),
        "n_questions": ss["n_questions"].astype(int),
        "n_pairs": n_pairs,
    })
    for effect in EFFECTS:
        table[f"eta2_{effect}"] = np.divide(ss[effect], ss["total"], out=np.full(defined.shape, np.nan), where=defined)
    for effect in ("total",) + EFFECTS:
        table[f"ss_{effect}"] = ss[effect]
    return table
