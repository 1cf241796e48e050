"""``steerkit serve``: an OpenAI-compatible chat server that steers each request its own way.

- :mod:`~steerkit.serve.registry`: the named vectors and trained steerers a server offers;
- :mod:`~steerkit.serve.engine`: one worker thread that batches waiting requests into one
  generation with per-row steering, sampling and stopping, streaming each row's text;
- :mod:`~steerkit.serve.app`: the FastAPI app (``/v1/models``, ``/v1/chat/completions``).

fastapi and uvicorn are the optional ``serve`` extra; :func:`create_app` imports them when called.
"""

from steerkit.serve.engine import BatchingEngine, QueueFull
from steerkit.serve.registry import SteeringEntry, UnknownSteering, UnusableSteering, VectorRegistry


def create_app(*args, **kwargs):
    """The FastAPI app (see :func:`steerkit.serve.app.create_app`)."""
    from steerkit.serve.app import create_app as create

    return create(*args, **kwargs)


__all__ = ["BatchingEngine", "QueueFull", "SteeringEntry", "UnknownSteering", "UnusableSteering", "VectorRegistry",
           "create_app"]
