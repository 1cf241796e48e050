"""Shared serve fixtures: a steering folder laid out like `steerkit run` / `fit` / `train` outputs."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from steerkit.estimators.files import save_vector
from steerkit.lm import Site


def random_vector(seed: int, shape=(64,), scale: float = 0.75) -> np.ndarray:
    return (scale * np.random.default_rng(seed).normal(size=shape)).astype(np.float32)


@pytest.fixture(scope="session")
def steering_folder(tmp_path_factory, tiny_llama):
    """``pirate/vectors/{best,pv}`` (a run's layout, with summary.json), ``calm`` (a fit vector),
    ``narrow`` (hidden size 32), ``adapters/style`` (a trained low-rank steerer) and an
    activation cache without sidecar (not steering)."""
    from steerkit.training import LowRankSteerer

    folder = tmp_path_factory.mktemp("steering")
    run = folder / "pirate"
    save_vector(run / "vectors" / "best", random_vector(1), model="tiny-llama", layer=2, construction="pv",
                concept="pirate", coefficient=4.0, positions="response")
    save_vector(run / "vectors" / "pv", random_vector(2, (4, 64)), model="tiny-llama", layer=1, construction="pv",
                concept="pirate", coefficient=3.0)
    (run / "summary.json").write_text(json.dumps({"recommendation": {"layers": [1, 2]}}))
    save_file({"X": np.zeros((2, 4, 64), np.float32)}, str(run / "activations.safetensors"))
    save_vector(folder / "calm", random_vector(3), model="tiny-llama", layer=3, construction="unit_mean",
                concept="calm", coefficient=5.0, positions="all")
    save_vector(folder / "narrow", random_vector(4, (32,)), layer=1, coefficient=1.0)
    steerer = LowRankSteerer(tiny_llama, sites=[Site(2, "mlp")], rank=4, batch_size=2, gradient_accumulation=1,
                             epochs=1, progress=False).fit(["Hi", "Count to three."], ["one", "two"])
    torch.manual_seed(1)
    with torch.no_grad():
        steerer.interventions_[0].W_up.normal_(std=2.0)
    steerer.save(folder / "adapters" / "style")
    return folder


class RunningServer:
    """A uvicorn server for ``app`` on a free loopback port, in a background thread."""

    def __init__(self, app):
        import threading

        import uvicorn

        self.app = app
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                                    lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    def client(self, **kwargs):
        import openai

        return openai.OpenAI(base_url=f"{self.url}/v1", api_key="unused", **kwargs)

    def stop(self):
        self.server.should_exit = True
        self.thread.join(30)
        assert not self.thread.is_alive(), "the test server did not stop"


@pytest.fixture(scope="session")
def serve(steering_folder, tiny_llama):
    """A function starting a server of the tiny model and ``steering_folder`` with the given
    ``create_app`` options; every server started is stopped at the end of the session."""
    from steerkit.serve import VectorRegistry, create_app

    registry = VectorRegistry.from_folder(steering_folder, tiny_llama)
    servers = []

    def start(**options) -> RunningServer:
        servers.append(RunningServer(create_app(tiny_llama, registry, **options)))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()
