"""``ActivationSet``: pooled contrastive activations with their labels and ids, saved safely."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from safetensors.numpy import save_file

from steerkit._io import atomic_path, read_safetensors
from steerkit._values import check_finite
from steerkit.lm.sites import COMPONENTS

LAYER_CONVENTION = "layer l = residual stream after decoder block l (1-based); layer 0 = embedding output"
_ID_FIELDS = ("y", "question_ids", "instruction_ids", "contrast_ids")
FORMAT_VERSION = 1
REMEDY = "re-create it with `steerkit extract`"
NON_FINITE_FIX = (
    "extract them again (non-finite hidden states usually mean a float16 overflow: use --dtype float32 or bfloat16)"
)
_METADATA_FIELDS = {
    "model_name": (lambda value: isinstance(value, str), "a string"),
    "concept": (lambda value: value is None or isinstance(value, str), "a string or null"),
    "layer_convention": (lambda value: isinstance(value, str), "a string"),
    "info": (lambda value: isinstance(value, dict), "a JSON object"),
    "component": (lambda value: value in COMPONENTS, f"one of {list(COMPONENTS)}"),
    "samples": (lambda value: value is None or (isinstance(value, list) and all(isinstance(row, dict) for row in value)),
                "null or a list of row objects"),
}
"""Optional metadata fields of an ActivationSet file: (type check, what the field must be)."""


@dataclass
class ActivationSet:
    """Contrastive activations of one concept on one model.

    Attributes
    ----------
    activations : ``{position: float32 array (n, L + 1, d)}`` with positions among
        ``prompt_last``, ``prompt_avg``, ``response_avg``; activation units.
    y : int array (n,), 1 for the positive instruction, 0 for the negative.
    question_ids, instruction_ids, contrast_ids : int arrays (n,). One contrast is one
        (instruction pair, question); it has exactly one positive and one negative sample.
    model_name : the model the activations come from.
    concept : concept name (or ``None``).
    samples : optional table with one row per sample (question, system, response, ...).
    component : the site component read at every layer: ``"residual"`` (block outputs),
        ``"attn"`` or ``"mlp"`` (sublayer outputs; layer 0 then holds zeros), see
        :mod:`steerkit.lm.sites`.
    """

    activations: dict[str, np.ndarray]
    y: np.ndarray
    question_ids: np.ndarray
    instruction_ids: np.ndarray
    contrast_ids: np.ndarray
    model_name: str = "unknown"
    concept: str | None = None
    samples: pd.DataFrame | None = None
    layer_convention: str = LAYER_CONVENTION
    info: dict = field(default_factory=dict)
    component: str = "residual"

    def __post_init__(self):
        if self.component not in COMPONENTS:
            raise ValueError(f"component must be one of {COMPONENTS}, got {self.component!r}")
        if not self.activations:
            raise ValueError("ActivationSet needs at least one position in `activations`")
        self.activations = {k: np.asarray(v, dtype=np.float32) for k, v in self.activations.items()}
        shapes = {k: v.shape for k, v in self.activations.items()}
        first = next(iter(shapes.values()))
        if len(first) != 3 or len(set(shapes.values())) != 1:
            raise ValueError(f"every activation array must have the same shape (n, L+1, d); got {shapes}")
        for position, array in self.activations.items():
            check_finite(array, f"activations[{position!r}]", NON_FINITE_FIX)
        for name in _ID_FIELDS:
            value = np.asarray(getattr(self, name)).astype(np.int64)
            if value.shape != (first[0],):
                raise ValueError(f"{name} must have shape ({first[0]},) to match the activations, got {value.shape}")
            setattr(self, name, value)
        if not np.isin(self.y, (0, 1)).all():
            raise ValueError("y must hold 1 (positive instruction) or 0 (negative instruction)")
        if self.samples is not None and len(self.samples) != first[0]:
            raise ValueError(f"samples has {len(self.samples)} rows, activations have {first[0]}")

    # -- shape ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.y.shape[0])

    def __repr__(self) -> str:
        return (
            f"ActivationSet(concept={self.concept!r}, model={self.model_name!r}, samples={len(self)}, "
            f"contrasts={self.n_contrasts}, layers={self.n_layers}, d={self.hidden_size}, "
            f"positions={self.positions})"
        )

    @property
    def positions(self) -> list[str]:
        return list(self.activations)

    @property
    def n_layers(self) -> int:
        """Entries on the layer axis, ``L + 1`` (layer 0 is the embedding output)."""
        return next(iter(self.activations.values())).shape[1]

    @property
    def hidden_size(self) -> int:
        return next(iter(self.activations.values())).shape[2]

    @property
    def n_contrasts(self) -> int:
        return int(np.unique(self.contrast_ids).size)

    # -- views ----------------------------------------------------------------------------
    def X(self, position: str = "response_avg", layer: int | None = None) -> np.ndarray:
        """Activations at ``position``: ``(n, L + 1, d)``, or ``(n, d)`` for one ``layer``."""
        if position not in self.activations:
            raise KeyError(f"position {position!r} not in this ActivationSet; available: {self.positions}")
        array = self.activations[position]
        return array if layer is None else array[:, layer]

    def contrasts(self) -> pd.DataFrame:
        """One row per contrast (sorted by contrast id): contrast_id, question_id, instruction_id."""
        frame = pd.DataFrame(
            {"contrast_id": self.contrast_ids, "question_id": self.question_ids, "instruction_id": self.instruction_ids}
        )
        return frame.drop_duplicates("contrast_id").sort_values("contrast_id").reset_index(drop=True)

    def differences(self, position: str = "response_avg", layer: int | None = None) -> np.ndarray:
        """Difference vectors ``h_pos - h_neg`` per contrast, ordered like :meth:`contrasts`.

        Returns ``(n_contrasts, L + 1, d)``, or ``(n_contrasts, d)`` for one ``layer``.
        """
        X = self.X(position, layer)
        order = np.lexsort((-self.y, self.contrast_ids))  # per contrast: positive first
        ids = self.contrast_ids[order]
        counts = np.unique(ids, return_counts=True)[1]
        labels = self.y[order].reshape(-1, 2) if (counts == 2).all() else None
        if labels is None or not ((labels[:, 0] == 1) & (labels[:, 1] == 0)).all():
            raise ValueError("every contrast id must have exactly one positive and one negative sample")
        differences = X[order[0::2]]  # positives; no copy of all of X in contrast order
        differences -= X[order[1::2]]
        return differences

    def steerer_inputs(self, position: str = "response_avg") -> tuple[np.ndarray, np.ndarray, dict]:
        """``(X, y, metadata)`` ready for ``steerer.fit(X, y, **metadata)`` (3-D ``X``)."""
        metadata = {"contrast_ids": self.contrast_ids, "instruction_ids": self.instruction_ids}
        return self.X(position), self.y, metadata

    def subset(self, mask) -> "ActivationSet":
        """The samples where boolean ``mask`` (n,) is True (e.g. some questions, for CV)."""
        mask = np.asarray(mask, dtype=bool)
        samples = None if self.samples is None else self.samples[mask].reset_index(drop=True)
        return ActivationSet(
            {k: v[mask] for k, v in self.activations.items()},
            self.y[mask], self.question_ids[mask], self.instruction_ids[mask], self.contrast_ids[mask],
            model_name=self.model_name, concept=self.concept, samples=samples, info=dict(self.info),
            component=self.component,
        )

    def fingerprint(self) -> str:
        """sha256 (hex) of the content a steerer is fitted on: the arrays (with their positions
        and shapes), the label and id arrays and the model name. Equal for equal content,
        whatever the object or file; searches key their caches and studies by it."""
        digest = hashlib.sha256(self.model_name.encode())
        if self.component != "residual":  # residual sets keep the fingerprints they had
            digest.update(self.component.encode())
        for position in sorted(self.activations):
            array = np.ascontiguousarray(self.activations[position])
            digest.update(f"{position}{array.shape}".encode())
            digest.update(array.data)
        for name in _ID_FIELDS:
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(getattr(self, name)).data)
        return digest.hexdigest()

    # -- files ----------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write one ``.safetensors`` file (arrays + JSON metadata), atomically. No pickle."""
        path = Path(path)
        if path.suffix != ".safetensors":
            path = path.with_suffix(".safetensors")
        tensors = {f"activations.{k}": np.ascontiguousarray(v) for k, v in self.activations.items()}
        tensors.update({name: getattr(self, name) for name in _ID_FIELDS})
        meta = {
            "format_version": FORMAT_VERSION,
            "model_name": self.model_name,
            "concept": self.concept,
            "layer_convention": self.layer_convention,
            "info": self.info,
            "component": self.component,
            "samples": None if self.samples is None else self.samples.to_dict(orient="records"),
        }
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata={"steerkit": json.dumps(meta)})
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ActivationSet":
        """Read a file written by :meth:`save`.

        A damaged file (unreadable, metadata of the wrong type, missing or non-finite arrays)
        raises one ``ValueError`` line that starts with the file's path.
        """
        path = Path(path)
        if not path.is_file() and path.with_suffix(".safetensors").is_file():
            path = path.with_suffix(".safetensors")
        if not path.is_file():
            raise FileNotFoundError(f"no ActivationSet file at {path}")
        tensors, metadata = read_safetensors(path, REMEDY)
        meta = _read_metadata(metadata, path)
        missing = [name for name in _ID_FIELDS if name not in tensors]
        if missing:
            raise ValueError(f"{path}: tensor {missing[0]!r} is missing; {REMEDY}")
        activations = {k.split(".", 1)[1]: v for k, v in tensors.items() if k.startswith("activations.")}
        samples = None if meta.get("samples") is None else pd.DataFrame(meta["samples"])
        defaults = {"model_name": "unknown", "concept": None, "layer_convention": LAYER_CONVENTION, "info": {},
                    "component": "residual"}
        try:
            return cls(activations, *(tensors[name] for name in _ID_FIELDS), samples=samples,
                       **{key: meta.get(key, default) for key, default in defaults.items()})
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None


def _read_metadata(metadata: dict[str, str], path: Path) -> dict:
    """The ``steerkit`` metadata of an ActivationSet file, parsed and type-checked.

    Raises a one-line ``ValueError`` naming ``path`` and the field when it is absent, not JSON,
    of a newer format or has a field of the wrong type (see ``_METADATA_FIELDS``).
    """
    raw = metadata.get("steerkit")
    if raw is None:
        raise ValueError(f"{path} is a safetensors file but not a steerkit ActivationSet")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: its steerkit metadata is not valid JSON ({err}); {REMEDY}") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: its steerkit metadata must be a JSON object; {REMEDY}")
    version = meta.get("format_version", FORMAT_VERSION)
    if isinstance(version, bool) or not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(
            f"{path} has format_version {version!r} but this steerkit reads up to {FORMAT_VERSION}: "
            f"upgrade steerkit or {REMEDY}"
        )
    for key, (is_valid, expected) in _METADATA_FIELDS.items():
        if key in meta and not is_valid(meta[key]):
            raise ValueError(f"{path}: metadata field {key!r} must be {expected}, got {meta[key]!r:.80}; {REMEDY}")
    return meta
