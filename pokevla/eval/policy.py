"""Policies as the evaluator sees them, and how worker processes build them.

A policy is built inside each simulator worker from a small picklable `PolicySpec`, once per worker,
then `reset(env)` starts each episode and `act(obs)` returns one 7-dim action. Model policies, in
this process or behind `pokevla serve`, predict a chunk of actions and hand it to the same
`ActionChunkBroker` a robot uses: `replan_steps` actions per chunk, or temporal ensembling.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class PolicySpec:
    kind: str  # "expert", "checkpoint", "server" or "replay" (a dataset's executed actions, open loop)
    checkpoint: str | None = None  # the model folder ("checkpoint"), the server's URL ("server"), the dataset ("replay")
    replan_steps: int | None = None  # None: the checkpoint's expert.execute_steps (0 there: the whole chunk)
    device: str = "cpu"
    ensemble_decay: float | None = None  # temporal ensembling of overlapping chunks (a query every step)
    api_key_file: str | None = None  # "server": the file holding its API key
    served: tuple | None = None  # "server": (weights sha256, training resolution, fast render) from its metadata

    @property
    def needs_images(self) -> bool:
        return self.kind in ("checkpoint", "server")  # the expert reads privileged state; a replay reads nothing

    @property
    def label(self) -> str:
        """A short name for tables: the kind, and the last part of its checkpoint, URL or dataset."""
        return f"{self.kind} {Path(self.checkpoint).name}" if self.checkpoint else self.kind

    def describe(self) -> dict:
        out = {"kind": self.kind, "checkpoint": self.checkpoint, "replan_steps": self.replan_steps, "device": self.device}
        if self.ensemble_decay is not None:
            out["ensemble_decay"] = self.ensemble_decay
        if self.served is not None:
            out["served_weights_sha256"] = self.served[0]
        return out


class Policy(Protocol):
    needs_images: bool

    def reset(self, env) -> None: ...

    def act(self, obs: dict) -> np.ndarray: ...


class ExpertPolicy:
    """The scripted expert (privileged simulator state): the reference the model is compared with."""

    needs_images = False

    def __init__(self):
        self._expert = None

    def reset(self, env) -> None:
        from pokevla.expert.policy import ScriptedExpert

        if self._expert is None or self._expert.env is not env:
            self._expert = ScriptedExpert(env)
        self._expert.reset()

    def act(self, obs: dict) -> np.ndarray:
        return self._expert.act(obs)


class _ChunkPolicy:
    """A policy that predicts action chunks from images, the state and the instruction."""

    needs_images = True
    observation_keys: list[str]

    def _start(self, replan_steps: int, ensemble_decay: float | None) -> None:
        from pokevla.serve.broker import ActionChunkBroker

        self.replan_steps = replan_steps
        self.broker = ActionChunkBroker(self._predict, replan_steps, ensemble_decay)
        self._instruction = ""

    def _predict(self, obs: dict) -> np.ndarray:
        observation = {k: obs[k] for k in self.observation_keys}
        observation["task"] = self._instruction
        return self.predict_chunk(observation)

    def predict_chunk(self, observation: dict) -> np.ndarray:
        raise NotImplementedError

    def reset(self, env) -> None:
        self.broker.reset()
        self._instruction = env.instruction

    def act(self, obs: dict) -> np.ndarray:
        return self.broker.act(obs)


class ChunkedModelPolicy(_ChunkPolicy):
    """A trained PokeVLA checkpoint in this process."""

    def __init__(self, checkpoint: str, replan_steps: int | None, device: str, ensemble_decay: float | None = None):
        import torch

        from pokevla.model.pokevla import PokeVLA

        torch.set_num_threads(1)  # one thread per simulator worker: the workers already fill the cores
        self.model = PokeVLA.from_pretrained(checkpoint, device=device).eval()
        expert = self.model.config.expert
        self.observation_keys = [f"observation.images.{v}" for v in self.model.config.views] + ["observation.state"]
        self._start(min(replan_steps or expert.execute_steps or expert.chunk_size, expert.chunk_size), ensemble_decay)

    def predict_chunk(self, observation: dict) -> np.ndarray:
        return self.model.predict_action_chunk(observation)[0].cpu().numpy()


class ServedPolicy(_ChunkPolicy):
    """A checkpoint behind `pokevla serve`, reached through the robot-side client."""

    def __init__(self, url: str, replan_steps: int | None, ensemble_decay: float | None, api_key_file: str | None):
        from pokevla.serve.client import PolicyClient, read_api_key

        api_key = read_api_key(api_key_file) if api_key_file else None
        self.client = PolicyClient(url, api_key=api_key)
        meta = self.client.metadata
        self.observation_keys = list(meta["images"]) + [meta["state"]["key"]]
        self._start(min(replan_steps or meta["execute_steps"], meta["action_horizon"]), ensemble_decay)

    def predict_chunk(self, observation: dict) -> np.ndarray:
        return self.client.predict_chunk(observation)


_cache: dict[PolicySpec, Policy] = {}


def make_policy(spec: PolicySpec) -> Policy:
    """This process's policy for `spec` (built once per worker)."""
    if spec not in _cache:
        if spec.kind == "expert":
            _cache[spec] = ExpertPolicy()
        elif spec.kind == "checkpoint":
            _cache[spec] = ChunkedModelPolicy(spec.checkpoint, spec.replan_steps, spec.device, spec.ensemble_decay)
        elif spec.kind == "server":
            _cache[spec] = ServedPolicy(spec.checkpoint, spec.replan_steps, spec.ensemble_decay, spec.api_key_file)
        elif spec.kind == "replay":
            from pokevla.eval.starts import ReplayPolicy

            _cache[spec] = ReplayPolicy(spec.checkpoint)
        else:
            raise ValueError(f"unknown policy kind {spec.kind!r}")
    return _cache[spec]
