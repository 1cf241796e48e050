"""What several ``steerkit`` commands build from their options: the model, layers, steerers, concepts.

Commands call ``_inputs._load_model`` through this module, so a test replaces the model of every
command with one ``monkeypatch.setattr(steerkit.cli._inputs, "_load_model", ...)``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path


def _check_device(name: str) -> None:
    """Raise a ValueError naming ``--device`` unless torch can parse ``name`` and the machine has it."""
    import torch

    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"--device {name!r} is not a torch device; use cpu, cuda, cuda:N or mps") from None
    if device.type == "cpu":
        return
    accelerator = torch.accelerator.current_accelerator()
    if accelerator is None or accelerator.type != device.type:
        present = f"has {accelerator.type}" if accelerator is not None else "has no accelerator"
        raise ValueError(f"--device {name!r}: this machine {present}; use --device cpu")
    if device.index is not None and device.index >= torch.accelerator.device_count():
        raise ValueError(f"--device {name!r}: this machine has {torch.accelerator.device_count()} {device.type} "
                         f"device(s), numbered from 0; use --device {device.type}:0 or --device cpu")


def _load_model(args, name: str | None):
    from steerkit.lm import load_model

    _check_device(args.device)
    start = time.perf_counter()
    lm = load_model(name, dtype=args.dtype, device=args.device, block_path=args.block_path,
                    trust_remote_code=args.trust_remote_code)
    print(f"loaded {lm} in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return lm


def _make_steerer(name: str):
    from steerkit.estimators import STEERERS

    return STEERERS[name]()


def _check_layer_index(layer: int, n_layers: int, what: str, where: str) -> int:
    """``layer`` if it indexes one of ``n_layers`` layers (0..n_layers-1), else a ValueError.

    ``what`` names the value (``"--layer 7"``), ``where`` what it indexes (a file, a model).
    """
    if not 0 <= layer < n_layers:
        raise ValueError(f"{what} is out of range for {where}: use --layer 0..{n_layers - 1}")
    return layer


def _recorded_concept(given: str | None, name: str | None, source: str | None, path, alternative: str = ""):
    """The concept a file was made from: ``given`` (``--concept``) when set, else the concept
    file recorded with it (``source``, an absolute path) while it exists, else the bundled
    concept ``name``. ``path`` (the file) and ``alternative`` (another option that would do)
    word the error when none of these works."""
    from steerkit.concepts import list_concepts, load_concept

    if given:
        return load_concept(given)
    if source and Path(source).is_file():
        return load_concept(source)
    if name in list_concepts():
        return load_concept(name)
    fix = "pass --concept NAME_OR_FILE" + (f" or {alternative}" if alternative else "")
    if not name and not source:
        raise ValueError(f"{path} names no concept: {fix}")
    where = f"its file {source} no longer exists" if source else "its concept file is not recorded"
    raise ValueError(f"{path} was made from concept {name!r}, which is not bundled, and {where}: {fix}")
