"""Every command module in steerkit/cli/ is a ``steerkit`` subcommand: one forgotten in the registry fails here."""

import argparse
import importlib
import pkgutil

import steerkit.cli
from steerkit.cli import build_parser


def _command_modules() -> set[str]:
    """Names of the modules in steerkit/cli/ that define ``add_parser``, found on disk
    (but ``__main__``, which runs the command when imported)."""
    names = (f"steerkit.cli.{info.name}" for info in pkgutil.iter_modules(steerkit.cli.__path__)
             if info.name != "__main__")
    return {name for name in names if hasattr(importlib.import_module(name), "add_parser")}


def _registered_modules() -> set[str]:
    """Modules of the functions the ``steerkit`` parser runs, one per subcommand."""
    subparsers = next(action for action in build_parser()._actions
                      if isinstance(action, argparse._SubParsersAction))
    return {subparser.get_default("func").__module__ for subparser in subparsers.choices.values()}


def test_every_command_module_is_registered():
    modules = _command_modules()
    assert len(modules) >= 8  # extract, fit, generate, concepts, new-concept, run, diagnose, search
    assert _registered_modules() == modules
