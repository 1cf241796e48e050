"""``steerkit serve``: builds the app from the options, binds to loopback unless told, warns otherwise."""

import pytest

from steerkit.cli import _inputs, main


@pytest.fixture
def started(monkeypatch, tiny_llama):
    """What ``uvicorn.run`` was called with, instead of serving; the app's engine (its worker
    thread) is closed afterwards, also when the test fails."""
    import uvicorn

    calls = {}
    monkeypatch.setattr(_inputs, "_load_model", lambda args, name: tiny_llama)
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: calls.update(app=app, **kwargs))
    yield calls
    if "app" in calls:
        calls["app"].state.engine.close()


def test_serves_the_folder_on_loopback_by_default(started, steering_folder, recwarn):
    assert main(["serve", "--vectors", str(steering_folder), "--port", "0", "--max-batch", "3", "--max-queue", "5"]) == 0
    assert (started["host"], started["port"]) == ("127.0.0.1", 0)
    state = started["app"].state
    assert state.registry.names == ["adapters/style", "calm", "narrow", "pirate/best", "pirate/pv"]
    assert (state.engine.max_batch, state.engine._queue.maxsize) == (3, 5)
    assert not [w for w in recwarn if "--host" in str(w.message)]


def test_an_explicit_public_host_warns(started, capsys):
    assert main(["serve", "--host", "0.0.0.0"]) == 0
    assert started["host"] == "0.0.0.0"
    assert "--host 0.0.0.0 accepts connections from other machines" in capsys.readouterr().err


def test_a_missing_vectors_folder_is_one_error_line(started, tmp_path, capsys):
    assert main(["serve", "--vectors", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --vectors") and "\n" not in err and "app" not in started
