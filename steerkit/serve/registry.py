"""The steering a server offers: every vector and trained steerer found under a folder.

:meth:`VectorRegistry.from_folder` walks a folder recursively and takes every ``.safetensors``
file that has a JSON sidecar of the same stem beside it:

- a vector written by :func:`steerkit.estimators.files.save_vector` (``steerkit fit``, the
  ``vectors/`` folder of a ``steerkit run`` output): its tensor ``(d,)`` or ``(L + 1, d)`` and
  sidecar (layer, coefficient, construction, concept, positions, component);
- a trained steerer written by :meth:`steerkit.training.TrainedSteerer.save` (its sidecar has a
  ``method``): its trained interventions, loaded onto the model (an *adapter* in requests).

Other safetensors files (activation caches, peft's ``adapter_model.safetensors`` of a LoRA
directory, whose adapters change the weights of every row and so cannot steer one row) have no
such sidecar and are not steering. A name is the file's path under the folder without its
suffix and without ``vectors`` folders: ``OUT/pirate/vectors/best.safetensors`` under ``OUT``
is ``pirate/best``, ``pirate_pv.safetensors`` in a flat folder is ``pirate_pv``. A run's
recommended layers come from the ``summary.json`` beside the vector or beside its ``vectors``
folder.

An entry that this model cannot use (another hidden size or depth, a steerer trained on
another model) is kept and listed, with the reason; requesting it raises that reason.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from steerkit._values import check_coefficient
from steerkit.estimators.files import load_vector, vector_paths
from steerkit.lm.hooks import check_layer
from steerkit.lm.interventions import POSITION_POLICIES, AddVector, Intervention
from steerkit.lm.sites import COMPONENTS, Site

KINDS = ("vector", "adapter")


class UnknownSteering(ValueError):
    """A request named a vector or adapter the registry does not hold."""


class UnusableSteering(ValueError):
    """A request's steering cannot be applied to this model (layer, strength, width, kind)."""


@dataclass
class SteeringEntry:
    """One vector or trained steerer of a :class:`VectorRegistry`.

    Attributes
    ----------
    name : the name requests use (see the module docs).
    kind : ``"vector"`` or ``"adapter"`` (a trained steerer).
    path : the ``.safetensors`` file.
    sidecar : its parsed JSON sidecar.
    vector : ``(d,)`` or ``(L + 1, d)`` float32 in activation units (vectors only, else None).
    recommended_layers : the run's recommended layers (``summary.json``), or None.
    problem : why this model cannot use the entry (one line), or None when it can.
    """

    name: str
    kind: str
    path: Path
    sidecar: dict
    vector: np.ndarray | None = None
    recommended_layers: list[int] | None = None
    problem: str | None = None
    _interventions: list[Intervention] = field(default_factory=list, repr=False)

    def describe(self) -> dict:
        """JSON-ready summary: name, kind, layer, coefficient, positions, component, construction,
        concept, recommended layers, shape, problem."""
        keys = ("layer", "coefficient", "positions", "component", "construction", "concept", "method")
        return {"name": self.name, "kind": self.kind, **{k: self.sidecar.get(k) for k in keys},
                "recommended_layers": self.recommended_layers,
                "shape": None if self.vector is None else list(self.vector.shape), "problem": self.problem}


def entry_name(path: Path, folder: Path) -> str:
    """The name of the steering file ``path`` under ``folder`` (see the module docs)."""
    parts = [part for part in path.relative_to(folder).with_suffix("").parts[:-1] if part != "vectors"]
    return "/".join([*parts, path.stem])


def recommended_layers(path: Path) -> list[int] | None:
    """The ``recommendation.layers`` of the ``summary.json`` beside ``path`` or beside its
    ``vectors`` folder, or None when there is none (or it has no such field)."""
    for folder in (path.parent, path.parent.parent if path.parent.name == "vectors" else None):
        summary = None if folder is None else folder / "summary.json"
        if summary is not None and summary.is_file():
            try:
                layers = json.loads(summary.read_text(encoding="utf-8"))["recommendation"]["layers"]
            except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as err:
                raise ValueError(f"{summary} is not a steerkit run summary ({type(err).__name__}: {err}); "
                                 "re-run `steerkit run` or delete it") from None
            return [int(layer) for layer in layers]
    return None


def _vector_problem(vector: np.ndarray, lm) -> str | None:
    if vector.shape[-1] != lm.hidden_size:
        return f"it holds vectors of {vector.shape[-1]} values but {lm.name} has hidden size {lm.hidden_size}"
    if vector.ndim == 2 and vector.shape[0] != lm.n_blocks + 1:
        return f"it holds {vector.shape[0]} layers but {lm.name} has {lm.n_blocks + 1} (0..{lm.n_blocks})"
    return None


def _load_entry(path: Path, folder: Path, lm) -> SteeringEntry | None:
    tensor_path, sidecar_path = vector_paths(path)
    if not sidecar_path.is_file():
        return None
    try:
        sidecar = json.loads(sidecar_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{sidecar_path} is not valid JSON ({err}); fix it or move the vector out of the folder") from None
    name = entry_name(tensor_path, folder)
    if isinstance(sidecar, dict) and "method" in sidecar:
        from steerkit.training import TrainedSteerer

        entry = SteeringEntry(name, "adapter", tensor_path, sidecar)
        try:
            entry._interventions = TrainedSteerer.load(tensor_path, lm).interventions()
        except ValueError as err:
            entry.problem = str(err)
        return entry
    vector, sidecar = load_vector(tensor_path)
    return SteeringEntry(name, "vector", tensor_path, sidecar, vector.astype(np.float32),
                         recommended_layers(tensor_path), _vector_problem(vector, lm))


class VectorRegistry:
    """Named steering for one model: vectors (steered with :class:`AddVector`) and trained
    steerers (their own interventions). ``entries``: ``{name: SteeringEntry}``, sorted by name."""

    def __init__(self, lm, entries: list[SteeringEntry]):
        self.lm = lm
        self.entries: dict[str, SteeringEntry] = {}
        for entry in sorted(entries, key=lambda e: e.name):
            if entry.name in self.entries:
                raise ValueError(f"{entry.path} and {self.entries[entry.name].path} both have the name {entry.name!r}: "
                                 "rename or move one of them")
            self.entries[entry.name] = entry

    @classmethod
    def from_folder(cls, folder: str | os.PathLike, lm) -> "VectorRegistry":
        """Every vector and trained steerer under ``folder`` (recursively), for ``lm``.

        Raises FileNotFoundError when ``folder`` is not a directory and a one-line ValueError
        naming the file when a steering file or a run summary is damaged.
        """
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"--vectors {folder} is not a folder: pass the output folder of `steerkit run` "
                                    "or a folder of `steerkit fit` vectors")
        paths = sorted(p for p in folder.rglob("*.safetensors")
                       if not any(part.startswith(".") for part in p.relative_to(folder).parts))
        entries = [entry for entry in (_load_entry(p, folder, lm) for p in paths) if entry is not None]
        return cls(lm, entries)

    @property
    def names(self) -> list[str]:
        return list(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, name) -> bool:
        return name in self.entries

    def get(self, name: str, kind: str = "vector") -> SteeringEntry:
        """The entry ``name`` of ``kind`` (``"vector"`` or ``"adapter"``); UnknownSteering
        listing the known names of that kind, UnusableSteering when the model cannot use it."""
        known = [n for n, e in self.entries.items() if e.kind == kind]
        entry = self.entries.get(name)
        if entry is None or entry.kind != kind:
            other = f" ({name!r} is an {entry.kind}: pass it as {{\"{entry.kind}\": ...}})" if entry else ""
            raise UnknownSteering(f"unknown {kind} {name!r}{other}; known {kind}s: {', '.join(known) or 'none'}")
        if entry.problem is not None:
            raise UnusableSteering(f"{kind} {name!r} ({entry.path}) cannot steer {self.lm.name}: {entry.problem}")
        return entry

    def interventions(self, name: str, layer=None, coefficient=None, positions=None,
                      component=None) -> list[Intervention]:
        """The interventions that steer with vector ``name``: ``coefficient * vector`` added at
        ``Site(layer, component)`` on ``positions``; each argument left None takes the sidecar's
        value (layer required there or here; coefficient 1.0, positions ``"response"``,
        component ``"residual"`` when the sidecar has none). For an adapter (trained steerer)
        its trained interventions, which take no such arguments.

        Raises UnknownSteering (with the known names) or UnusableSteering (one line naming the
        field and the fix): layer out of range, NaN or huge coefficient, unknown positions or
        component, a vector of another width.
        """
        entry = self.entries.get(name)
        if entry is not None and entry.kind == "adapter":
            given = [k for k, v in {"layer": layer, "coefficient": coefficient, "positions": positions,
                                    "component": component}.items() if v is not None]
            entry = self.get(name, "adapter")
            if given:
                raise UnusableSteering(f"adapter {name!r} is trained at fixed sites: remove {', '.join(given)}")
            return list(entry._interventions)
        entry = self.get(name, "vector")
        sidecar = entry.sidecar
        layer = sidecar.get("layer") if layer is None else layer
        if layer is None:
            raise UnusableSteering(f"vector {name!r} records no layer: pass 'layer' (0..{self.lm.n_blocks})")
        component = component or sidecar.get("component") or "residual"
        positions = positions or sidecar.get("positions") or "response"
        coefficient = (1.0 if sidecar.get("coefficient") is None else sidecar["coefficient"]) \
            if coefficient is None else coefficient
        if positions not in POSITION_POLICIES:
            raise UnusableSteering(f"positions {positions!r} is not a position policy: use one of {', '.join(POSITION_POLICIES)}")
        if component not in COMPONENTS:
            raise UnusableSteering(f"component {component!r} is not a site component: use one of {', '.join(COMPONENTS)}")
        try:
            layer = check_layer(self.lm, layer)
            coefficient = check_coefficient(coefficient)
            site = Site(layer, component)
        except (TypeError, ValueError) as err:
            raise UnusableSteering(f"vector {name!r}: {err}") from None
        vector = entry.vector[layer] if entry.vector.ndim == 2 else entry.vector
        return [AddVector(vector, site=site, coefficient=coefficient, positions=positions)]

    def describe(self) -> list[dict]:
        """:meth:`SteeringEntry.describe` of every entry, by name."""
        return [entry.describe() for entry in self.entries.values()]
