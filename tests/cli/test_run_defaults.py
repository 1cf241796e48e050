"""The command line reads its defaults from RunSettings: one place defines them."""

from dataclasses import fields

import pytest

from steerkit.cli import build_parser
from steerkit.run_settings import RunSettings

SETTINGS = {field.name: field.default for field in fields(RunSettings)}
# options of search and generate that mean what the RunSettings field of that name means
# (their --n-questions count other questions, so it is not one of them); --n-trials is the budget
SHARED = {"search": {"seed": "seed", "n_held_out": "n_held_out", "max_new_tokens": "max_new_tokens",
                     "batch_size": "batch_size", "instruction_role": "instruction_role", "n_trials": "budget"},
          "generate": {"max_new_tokens": "max_new_tokens", "batch_size": "batch_size"}}


def _options(command: str) -> dict:
    """dest -> default of every option of ``command``."""
    subparsers = next(a for a in build_parser()._actions if a.dest == "command")
    return {action.dest: action.default for action in subparsers.choices[command]._actions}


@pytest.mark.parametrize("command", ["extract", "run"])
def test_every_run_setting_of_extract_and_run_defaults_to_run_settings(command):
    options = _options(command)
    shared = SETTINGS.keys() & options.keys()
    assert {"n_questions", "max_new_tokens", "batch_size", "instruction_role", "min_coherence"} <= shared
    if command == "run":
        assert shared == SETTINGS.keys()  # every knob of a run is an option of `steerkit run`
    assert {name: options[name] for name in shared} == {name: SETTINGS[name] for name in shared}


@pytest.mark.parametrize("command", sorted(SHARED))
def test_the_shared_options_of_search_and_generate_default_to_run_settings(command):
    options = _options(command)
    assert {dest: options[dest] for dest in SHARED[command]} == {dest: SETTINGS[name] for dest, name in SHARED[command].items()}


def test_one_instruction_role_default_for_every_command_and_the_help_says_so(capsys):
    roles = {command: _options(command)["instruction_role"] for command in ("extract", "run", "search")}
    assert set(roles.values()) == {RunSettings.instruction_role}
    for command in roles:
        with pytest.raises(SystemExit):
            build_parser().parse_args([command, "--help"])
        assert "same default for every command" in " ".join(capsys.readouterr().out.split())
