"""Concepts shipped with steerkit (``steerkit/concepts/data/*.json``)."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from steerkit.concepts.concept import Concept, ConceptError


def _data_dir() -> Path:
    return Path(str(resources.files("steerkit.concepts") / "data"))


def list_concepts() -> list[str]:
    """Names of the bundled concepts, sorted."""
    return sorted(p.stem for p in _data_dir().glob("*.json"))


def load_concept(name_or_path: str | os.PathLike) -> Concept:
    """A bundled concept by name (``"pirate"``) or any concept JSON file by path."""
    path = Path(name_or_path)
    if path.suffix == ".json" or path.exists():
        return Concept.load(path)
    if str(name_or_path) not in list_concepts():
        raise ConceptError(
            f"unknown concept {str(name_or_path)!r}: not a file and not bundled. "
            f"Bundled concepts: {', '.join(list_concepts())}"
        )
    return Concept.load(_data_dir() / f"{name_or_path}.json")
