"""The live comparison page of ``steerkit serve`` and the JSON its panels read.

``router`` serves ``/`` (the page: ``static/index.html``, ``app.js``, ``style.css``, plain
HTML/JS with no build step), ``/static/*``, and:

- ``GET /api/vectors``: the loaded vectors and adapters (see :func:`vector_summary`);
- ``GET /api/vectors/geometry``: cosine matrix and 2-D PCA of the loaded vectors
  (see :func:`vector_geometry`);
- ``POST /api/diff`` ``{"baseline": str, "steered": str}``: word-level diff of a steered answer
  against the baseline (see :func:`word_diff`); a POST because answers can outgrow a URL.

The columns of the page stream from the server's own ``POST /v1/chat/completions``, one
request per column, each with its own ``steering`` list.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

STATIC_DIR = Path(__file__).parent / "static"
MAX_DIFF_CHARS = 200_000  # per text; difflib is quadratic in the worst case, answers are far shorter
_WORD = re.compile(r"\s*\S+\s*|\s+")  # a word with the whitespace around it (leading only at the start)

router = APIRouter()
router.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


def direction_at_layer(vector: np.ndarray, layer: int | None) -> np.ndarray:
    """The ``(d,)`` vector a steering vector adds at its layer.

    ``vector`` is ``(d,)`` (one layer: returned as is) or ``(n_layers, d)`` (all layers: row
    ``layer``, or the row of largest norm when ``layer`` is None).
    """
    vector = np.asarray(vector, dtype=np.float64)
    if vector.ndim == 1:
        return vector
    if layer is None:
        layer = int(np.argmax(np.linalg.norm(vector, axis=1)))
    return vector[layer]


def vector_summary(entry) -> dict:
    """What the page shows of one registry entry (:class:`~steerkit.serve.registry.SteeringEntry`).

    Its :meth:`~steerkit.serve.registry.SteeringEntry.describe` plus, for a vector
    (``(d,)`` or ``(n_layers, d)``, activation units), ``norm``: the L2 norm of
    :func:`direction_at_layer`, and ``norms``: the L2 norm of every layer's row
    (``n_layers`` floats) for an all-layer vector, None otherwise.
    """
    summary = {**entry.describe(), "norm": None, "norms": None}
    if entry.vector is not None:
        vector = np.asarray(entry.vector, dtype=np.float64)
        summary["norm"] = float(np.linalg.norm(direction_at_layer(vector, entry.sidecar.get("layer"))))
        if vector.ndim == 2:
            summary["norms"] = np.linalg.norm(vector, axis=1).tolist()
    return summary


def cosine_matrix(directions: np.ndarray) -> np.ndarray:
    """Cosine similarity ``(n, n)`` between the rows of ``directions`` ``(n, d)``; 0 for a zero row."""
    norms = np.linalg.norm(directions, axis=1, keepdims=True)
    units = np.divide(directions, norms, out=np.zeros_like(directions), where=norms > 0)
    cosine = np.clip(units @ units.T, -1.0, 1.0)
    np.fill_diagonal(cosine, np.where(norms[:, 0] > 0, 1.0, 0.0))
    return cosine


def pca_coordinates(directions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2-D PCA of the rows of ``directions`` ``(n, d)`` (activation units, centred by sklearn).

    Returns ``(coordinates (n, 2), explained variance ratio (2,))``; with fewer than two
    components of variance (one vector, or all equal) the missing columns are 0.
    """
    from sklearn.decomposition import PCA

    n = directions.shape[0]
    coordinates, ratio = np.zeros((n, 2)), np.zeros(2)
    n_components = min(2, n - 1, directions.shape[1])  # n points span at most n - 1 directions
    if n_components > 0 and np.ptp(directions, axis=0).max() > 0:
        pca = PCA(n_components=n_components).fit(directions)
        coordinates[:, :n_components] = pca.transform(directions)
        ratio[:n_components] = pca.explained_variance_ratio_
    return coordinates, ratio


def vector_geometry(names: list[str], directions: np.ndarray) -> dict:
    """The geometry panels' JSON for vectors ``names`` with ``directions`` ``(n, d)``:
    ``names``, ``cosine`` (:func:`cosine_matrix`), ``pca`` and ``explained_variance_ratio``
    (:func:`pca_coordinates`)."""
    if not names:
        return {"names": [], "cosine": [], "pca": [], "explained_variance_ratio": [0.0, 0.0]}
    directions = np.asarray(directions, dtype=np.float64)
    coordinates, ratio = pca_coordinates(directions)
    return {"names": list(names), "cosine": cosine_matrix(directions).tolist(), "pca": coordinates.tolist(),
            "explained_variance_ratio": ratio.tolist()}


def word_diff(baseline: str, steered: str) -> list[dict]:
    """Word-level diff turning ``baseline`` into ``steered`` (difflib on whitespace-split words).

    Returns segments ``{"op": "equal" | "delete" | "insert", "text": str}`` in reading order;
    the ``equal`` and ``insert`` texts concatenate to ``steered`` exactly, and the ``equal`` and
    ``delete`` texts hold the words of ``baseline`` in order (equal words keep the steered
    text's whitespace). Words compare without their surrounding whitespace.
    """
    old, new = _WORD.findall(baseline), _WORD.findall(steered)
    matcher = difflib.SequenceMatcher(None, [w.strip() for w in old], [w.strip() for w in new], autojunk=False)
    segments = []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            segments.append({"op": "equal", "text": "".join(new[j1:j2])})
            continue
        if i2 > i1:
            segments.append({"op": "delete", "text": "".join(old[i1:i2])})
        if j2 > j1:
            segments.append({"op": "insert", "text": "".join(new[j1:j2])})
    return segments


class DiffRequest(BaseModel):
    """Body of ``POST /api/diff``."""

    baseline: str = Field(max_length=MAX_DIFF_CHARS)
    steered: str = Field(max_length=MAX_DIFF_CHARS)


@router.get("/", include_in_schema=False)
def page() -> FileResponse:
    """The comparison page."""
    return FileResponse(STATIC_DIR / "index.html")


def _registry(request: Request):
    return request.app.state.registry


def usable_vectors(registry) -> list:
    """The registry's vector entries this model can steer with (no ``problem``), by name."""
    return [entry for entry in registry.entries.values() if entry.kind == "vector" and entry.problem is None]


@router.get("/api/vectors")
def vectors(request: Request) -> dict:
    """``{"model", "n_layers", "vectors", "adapters"}``: the model's name, its layer count
    (``n_blocks + 1``: layers ``0..n_blocks`` can be steered) and :func:`vector_summary` of
    every vector and every adapter (trained steerer) the registry holds, usable or not."""
    registry = _registry(request)
    summaries = [vector_summary(entry) for entry in registry.entries.values()]
    return {"model": registry.lm.name, "n_layers": registry.lm.n_blocks + 1,
            "vectors": [s for s in summaries if s["kind"] == "vector"],
            "adapters": [s for s in summaries if s["kind"] == "adapter"]}


@router.get("/api/vectors/geometry")
def geometry(request: Request) -> dict:
    """:func:`vector_geometry` of the usable vectors, each at its own layer (:func:`direction_at_layer`)."""
    entries = usable_vectors(_registry(request))
    directions = np.array([direction_at_layer(e.vector, e.sidecar.get("layer")) for e in entries])
    return vector_geometry([e.name for e in entries], directions)


@router.post("/api/diff")
def diff(body: DiffRequest) -> dict:
    """``{"segments": word_diff(baseline, steered)}``."""
    return {"segments": word_diff(body.baseline, body.steered)}
