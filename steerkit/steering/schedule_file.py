"""Read a :class:`~steerkit.steering.schedule.SteeringSchedule` from a JSON file.

Format (vector paths are relative to the schedule file; ``layer`` and ``coefficient`` default
to the ones recorded in the vector's sidecar, the coefficient else to 1)::

    {"positions": "response",
     "phases": [
       {"name": "code", "vectors": [{"path": "code.safetensors", "layer": 12, "coefficient": 4.0}],
        "until": {"after_tokens": 20}},
       {"name": "bug", "vectors": [{"path": "bug.safetensors"}],
        "until": {"matches": "\\\\bfix(ed)?\\\\b"}},
       {"name": "watch", "vectors": [],
        "until": {"projection": {"path": "refusal.safetensors", "layer": 10, "threshold": 2.5, "above": true}}},
       {"name": "free", "vectors": []}
     ]}

Every problem is a one-line ``ValueError`` naming the file and the field.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from steerkit.estimators.files import load_vector
from steerkit.lm.interventions import AddVector, check_positions
from steerkit.lm.sites import Site
from steerkit.steering.schedule import AfterTokens, Phase, ProjectionCrosses, SteeringSchedule, TextMatches

UNTIL_KEYS = ("after_tokens", "matches", "projection")


class _Fields:
    """Field access on one JSON object with errors naming ``file: where.field``."""

    def __init__(self, path: Path, where: str, obj, allowed: tuple[str, ...]):
        if not isinstance(obj, dict):
            raise ValueError(f"{path}: {where} must be a JSON object, got {type(obj).__name__}")
        unknown = sorted(set(obj) - set(allowed))
        if unknown:
            raise ValueError(f"{path}: {where} has unknown field(s) {unknown}; allowed: {list(allowed)}")
        self.path, self.where, self.obj = path, where, obj

    def name(self, key: str) -> str:
        return f"{self.path}: {self.where}.{key}" if self.where else f"{self.path}: {key}"

    def get(self, key: str, kind, default=None, *, required: bool = False):
        if key not in self.obj:
            if required:
                raise ValueError(f"{self.name(key)} is missing: add it")
            return default
        value = self.obj[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
            raise ValueError(f"{self.name(key)} must be a {getattr(kind, '__name__', kind)}, got {value!r}")
        return value


def _vector_at(fields: _Fields, lm) -> tuple[np.ndarray, Site, dict]:
    """The ``(d,)`` vector, its site and sidecar for a ``{"path", "layer"}`` entry."""
    file = fields.path.parent / fields.get("path", str, required=True)
    try:
        vector, sidecar = load_vector(file)
    except (OSError, ValueError) as error:
        raise ValueError(f"{fields.name('path')}: cannot read {file} ({str(error).splitlines()[0]})") from None
    layer = fields.get("layer", int, sidecar.get("layer"))
    if layer is None:
        raise ValueError(f"{fields.name('layer')} is missing and {file} records no layer: add it")
    if not 0 <= layer <= lm.n_blocks:
        raise ValueError(f"{fields.name('layer')} is {layer} but {lm.name} has layers 0..{lm.n_blocks}")
    if vector.ndim == 2:
        if vector.shape[0] != lm.n_blocks + 1:
            raise ValueError(f"{fields.name('path')}: {file} holds {vector.shape[0]} layers but {lm.name} has "
                             f"{lm.n_blocks + 1}; use vectors fitted on this model")
        vector = vector[layer]
    if vector.shape[0] != lm.hidden_size:
        raise ValueError(f"{fields.name('path')}: {file} holds vectors of {vector.shape[0]} values but {lm.name} has "
                         f"hidden size {lm.hidden_size}; use vectors fitted on this model")
    return vector, Site(layer, sidecar.get("component") or "residual"), sidecar


def _until(path: Path, where: str, obj, lm):
    """The condition of a phase's ``until`` object (exactly one of :data:`UNTIL_KEYS`)."""
    until = _Fields(path, where, obj, UNTIL_KEYS)
    if len(obj) != 1:
        raise ValueError(f"{path}: {where} must hold exactly one of {list(UNTIL_KEYS)}, got {sorted(obj)}")
    try:
        if "after_tokens" in obj:
            return AfterTokens(until.get("after_tokens", int))
        if "matches" in obj:
            return TextMatches(until.get("matches", str))
        monitor = _Fields(path, f"{where}.projection", obj["projection"], ("path", "layer", "threshold", "above"))
        direction, site, _ = _vector_at(monitor, lm)
        return ProjectionCrosses(direction, site, monitor.get("threshold", float, required=True),
                                 monitor.get("above", bool, True))
    except ValueError as error:  # the conditions' own checks, located in the file
        message = str(error)
        raise ValueError(message if message.startswith(str(path)) else f"{path}: {where}: {message}") from None


def load_schedule(path: str | os.PathLike, lm) -> SteeringSchedule:
    """The schedule in the JSON file ``path`` (format in the module docs), for ``lm``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"schedule file not found: {path}")
    try:
        document = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON ({error}): fix the file") from None
    top = _Fields(path, "", document, ("phases", "positions"))
    try:
        positions = check_positions(top.get("positions", str, "response"))
    except ValueError as error:
        raise ValueError(f"{top.name('positions')}: {error}") from None
    phases_json = top.get("phases", list, required=True)
    if not phases_json:
        raise ValueError(f"{top.name('phases')} is empty: add at least one phase")
    phases = []
    for index, phase_json in enumerate(phases_json):
        where = f"phases[{index}]"
        fields = _Fields(path, where, phase_json, ("name", "vectors", "until"))
        interventions = []
        for k, entry in enumerate(fields.get("vectors", list, [])):
            vector_fields = _Fields(path, f"{where}.vectors[{k}]", entry, ("path", "layer", "coefficient"))
            vector, site, sidecar = _vector_at(vector_fields, lm)
            coefficient = vector_fields.get("coefficient", float, sidecar.get("coefficient") or 1.0)
            interventions.append(AddVector(vector, site=site, coefficient=coefficient, positions=positions))
        until = None if phase_json.get("until") is None else _until(path, f"{where}.until", phase_json["until"], lm)
        phases.append(Phase(interventions, until=until, name=fields.get("name", str, f"phase {index}")))
    try:
        return SteeringSchedule(phases)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
