"""A numpy backend with the served model's interface: fast, deterministic, and each answer derived
from its own request (so a response delivered to the wrong client is caught)."""

import threading
import time

import numpy as np
import pytest

from pokevla.serve.protocol import ObservationSpec
from pokevla.serve.server import ServerConfig, ServerThread

SPEC = ObservationSpec(("primary", "wrist"), (16, 16, 3), 8)


class EchoBackend:
    """actions[t] = state[:7] + t: the request's state comes back in its chunk."""

    name = "echo"
    spec = SPEC

    def __init__(self, delay_s: float = 0.0):
        self.delay_s, self.batches, self._lock = delay_s, [], threading.Lock()

    def predict(self, observations):
        with self._lock:
            self.batches.append(len(observations))
        time.sleep(self.delay_s)
        for o in observations:
            if o["task"] == "explode":
                raise RuntimeError("the model failed")
        states = np.stack([o["observation.state"][:7] for o in observations])
        return (states[:, None, :] + np.arange(8, dtype=np.float32)[None, :, None]).astype(np.float32)

    def metadata(self):
        return {"backend": self.name, "model": {"preset": "echo", "weights_sha256": "0" * 64},
                "action_horizon": 8, "action_dim": 7, "execute_steps": 8, "state_dim": 8,
                "training_render": None, **SPEC.describe()}


def observation(state_value: float = 0.0, openpi_keys: bool = False) -> dict:
    image = np.zeros((16, 16, 3), np.uint8)
    state = np.full(8, state_value, np.float32)
    if openpi_keys:
        return {"observation/image": image, "observation/wrist_image": image, "observation/state": state,
                "prompt": "pick up the bowl"}
    return {"observation.images.primary": image, "observation.images.wrist": image, "observation.state": state,
            "task": "pick up the bowl"}


@pytest.fixture
def serve():
    """serve(backend=EchoBackend(), **ServerConfig fields) -> the server's ws:// URL, stopped after the test."""
    threads = []

    def start(backend=None, **config):
        thread = ServerThread(backend or EchoBackend(), ServerConfig(port=0, **config))
        threads.append(thread)
        return thread.__enter__()

    yield start
    for t in threads:
        t.__exit__(None, None, None)
