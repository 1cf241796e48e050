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

The (Q, P) grid is never formed: with ``N`` usable questions, ``S_q = Σ_p u_pq``,
``T_p = Σ_q u_pq`` and ``G = Σ_q S_q``, and ``‖u_pq‖ = 1``,

    SS_total = N P − ‖G‖² / (N P),   SS_prompt = Σ_p ‖T_p‖² / N − ‖G‖² / (N P),
    SS_question = Σ_q ‖S_q‖² / P − ‖G‖² / (N P),

so one pass over the unit differences gives the per-question and per-pair sums.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from steerkit.diagnostics.geometry import _check_ids, group_sums, question_sums, unit_differences

EFFECTS = ("prompt", "question", "interaction")
_SHOWN_IDS = 10
_TOTAL_RTOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-4}
"""SS_total below this × the number of cells is rounding noise of unit vectors of that dtype:
all unit vectors equal."""


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
            stacklevel=5,  # the caller of anova_eta_squared or geometry_report
        )
    return complete


def _sums(units, valid, question_ids, instruction_ids, sums_by_question=None) -> dict[str, np.ndarray]:
    """The sums the ANOVA needs, per layer, over complete questions that are usable there.

    A question is usable at a layer when its difference is non-zero under every pair there.
    ``sums_by_question`` may pass :func:`~steerkit.diagnostics.geometry.question_sums` of
    these units (computed once for several statistics).

    Returns ``{"squared_question_sums": Σ_q ‖S_q‖² (L,), "grand": G (L, d),
    "pair_sums": T (P, L, d), "n_questions": N (L,)}`` and ``n_pairs``.
    """
    n = units.shape[0]
    question_ids = _check_ids(question_ids, n, "question_ids")
    instruction_ids = _check_ids(instruction_ids, n, "instruction_ids")
    questions, q_index, pairs, p_index = _cell_indices(question_ids, instruction_ids)
    complete = _complete_questions(questions, q_index, pairs, p_index)
    present = np.zeros((questions.size, pairs.size) + valid.shape[1:], dtype=bool)
    present[q_index, p_index] = valid
    usable = present.all(axis=1) & complete[:, None]  # (Q, L)
    if sums_by_question is None:
        sums_by_question = question_sums(units, valid, question_ids)[0]
    weights = usable.astype(np.float64)
    return {
        "squared_question_sums": np.einsum("ql,qld,qld->l", weights, sums_by_question, sums_by_question),
        "grand": np.einsum("ql,qld->ld", weights, sums_by_question),
        "pair_sums": _usable_pair_sums(units, usable[q_index], p_index, pairs.size),
        "n_questions": weights.sum(axis=0),
        "n_pairs": pairs.size,
    }


def _usable_pair_sums(units: np.ndarray, row_usable: np.ndarray, p_index: np.ndarray, n_pairs: int) -> np.ndarray:
    """Per-pair sums (P, L, d) of the units whose question is usable at that layer.

    ``row_usable`` (n, L); rows left out go to a spare group ``n_pairs`` that is dropped. One
    pass over ``units``, plus one pass over a single layer for each layer that leaves out
    some question (layer 0 of prompt-last differences, typically).
    """
    spare = np.where(row_usable.any(axis=1), p_index, n_pairs)
    sums = group_sums(units, spare, n_pairs + 1)[:n_pairs]
    for layer in np.flatnonzero((row_usable != row_usable.any(axis=1, keepdims=True)).any(axis=0)):
        rows = np.where(row_usable[:, layer], p_index, n_pairs)
        sums[:, layer] = group_sums(units[:, layer], rows, n_pairs + 1)[:n_pairs]
    return sums


def anova_sums_of_squares(sums: dict) -> dict[str, np.ndarray]:
    """Sums of squares per layer from :func:`_sums` (see the module docstring).

    Returns ``{"total", "prompt", "question", "interaction", "n_questions"}``, each (L,).
    """
    n_questions, n_pairs = sums["n_questions"], sums["n_pairs"]
    safe_q = np.maximum(n_questions, 1.0)
    grand_part = np.einsum("ld,ld->l", sums["grand"], sums["grand"]) / (safe_q * n_pairs)  # N P ‖ū‖²
    total = n_questions * n_pairs - grand_part
    prompt = np.einsum("pld,pld->l", sums["pair_sums"], sums["pair_sums"]) / safe_q - grand_part
    question = sums["squared_question_sums"] / n_pairs - grand_part
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
    units, valid, _ = unit_differences(D)
    return anova_table(units, valid, question_ids, instruction_ids)


def anova_table(units, valid, question_ids, instruction_ids, sums_by_question=None) -> pd.DataFrame:
    """:func:`anova_eta_squared` of unit differences from
    :func:`~steerkit.diagnostics.geometry.unit_differences` (see :func:`_sums`)."""
    sums = _sums(units, valid, question_ids, instruction_ids, sums_by_question)
    ss, n_pairs = anova_sums_of_squares(sums), sums["n_pairs"]
    n_cells = ss["n_questions"] * n_pairs
    rtol = _TOTAL_RTOL[units.dtype]
    defined = (ss["n_questions"] >= 2) & (n_pairs >= 2) & (ss["total"] > rtol * n_cells)
    table = pd.DataFrame({
        "layer": np.arange(valid.shape[1]),
        "n_questions": ss["n_questions"].astype(int),
        "n_pairs": n_pairs,
    })
    for effect in EFFECTS:
        table[f"eta2_{effect}"] = np.divide(ss[effect], ss["total"], out=np.full(defined.shape, np.nan), where=defined)
    for effect in ("total",) + EFFECTS:
        table[f"ss_{effect}"] = ss[effect]
    return table
