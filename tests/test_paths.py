"""Names that become path components, and paths that must stay under an output folder."""

import os

import pytest

from steerkit._paths import MAX_NAME_LENGTH, path_under, safe_name


@pytest.mark.parametrize("name", ["pirate", "Formal_2", "my-concept.v2", "_x", "a" * MAX_NAME_LENGTH])
def test_safe_names_pass_unchanged(name):
    assert safe_name(name, what="field 'name'", source="c.json") == name


@pytest.mark.parametrize("name", [
    "", ".", "..", "../..", "../x", "a/b", "a\\b", "/etc/passwd", ".hidden", "-rf", "with space", "tab\tname",
    "nul\0byte", "ünïcode", "a" * (MAX_NAME_LENGTH + 1), None, 3,
])
def test_unsafe_names_are_refused_naming_field_and_source(name):
    with pytest.raises(ValueError) as info:
        safe_name(name, what="field 'name'", source="concepts/bad.json")
    message = str(info.value)
    assert message.startswith("concepts/bad.json: field 'name' ") and "\n" not in message
    assert "letters, digits" in message


def test_safe_name_without_source_starts_with_what():
    with pytest.raises(ValueError, match=r"^argument NAME '\.\./x' "):
        safe_name("../x", what="argument NAME")


def test_path_under_joins_inside_the_root(tmp_path):
    assert path_under(tmp_path, "pirate", "report.html") == tmp_path / "pirate" / "report.html"
    assert path_under(tmp_path / "not-yet", "pirate") == tmp_path / "not-yet" / "pirate"


@pytest.mark.parametrize("part", ["..", "../x", "a/../../x", "/etc"])
def test_path_under_refuses_escapes(tmp_path, part):
    with pytest.raises(ValueError, match=r"outside the output folder"):
        path_under(tmp_path / "out", part)


def test_path_under_follows_symlinks(tmp_path):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    os.symlink(elsewhere, out / "pirate")
    with pytest.raises(ValueError, match=r"pirate.*outside the output folder.*symbolic link"):
        path_under(out, "pirate", "report.html")
    os.symlink(out, tmp_path / "link-to-out")  # the root itself may be a link
    assert path_under(tmp_path / "link-to-out", "formal") == tmp_path / "link-to-out" / "formal"
