"""Policies as the evaluator sees them, and how worker processes build them.

A policy is built inside each simulator worker from a small picklable `PolicySpec`, once per worker,
then `reset(env)` starts each episode and `act(obs)` returns one 7-dim action. Model policies
predict a chunk of actions and execute `replan_steps` of them before predicting again.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class PolicySpec:
    kind: str  # "expert", "checkpoint" or "replay" (a dataset's executed actions, open loop)
    checkpoint: str | None = None  # the model folder ("checkpoint") or the dataset ("replay")
    replan_steps: int | None = None  # None: the checkpoint's expert.execute_steps (0 there: the whole chunk)
    device: str = "cpu"

    @property
    def needs_images(self) -> bool:
        return self.kind == "checkpoint"  # the expert reads privileged simulator state; a replay reads nothing

    def describe(self) -> dict:
        return {"kind": self.kind, "checkpoint": self.checkpoint, "replan_steps": self.replan_steps, "device": self.device}


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


class ChunkedModelPolicy:
    """A trained PokeVLA checkpoint: predicts a chunk, executes `replan_steps` actions of it."""

    needs_images = True

    def __init__(self, checkpoint: str, replan_steps: int | None, device: str):
        import torch

        from pokevla.model.pokevla import PokeVLA

        torch.set_num_threads(1)  # one thread per simulator worker: the workers already fill the cores
        self.model = PokeVLA.from_pretrained(checkpoint, device=device).eval()
        expert = self.model.config.expert
        self.replan_steps = min(replan_steps or expert.execute_steps or expert.chunk_size, expert.chunk_size)
        self._keys = [f"observation.images.{v}" for v in self.model.config.views] + ["observation.state"]
        self._queue: deque[np.ndarray] = deque()
        self._instruction = ""

    def reset(self, env) -> None:
        self._queue.clear()
        self._instruction = env.instruction

    def act(self, obs: dict) -> np.ndarray:
        if not self._queue:
            observation = {k: obs[k] for k in self._keys}
            observation["task"] = self._instruction
            chunk = self.model.predict_action_chunk(observation)[0].cpu().numpy()
            self._queue.extend(chunk[: self.replan_steps])
        return self._queue.popleft()


_cache: dict[PolicySpec, Policy] = {}


def make_policy(spec: PolicySpec) -> Policy:
    """This process's policy for `spec` (built once per worker)."""
    if spec not in _cache:
        if spec.kind == "expert":
            _cache[spec] = ExpertPolicy()
        elif spec.kind == "checkpoint":
            _cache[spec] = ChunkedModelPolicy(spec.checkpoint, spec.replan_steps, spec.device)
        elif spec.kind == "replay":
            from pokevla.eval.starts import ReplayPolicy

            _cache[spec] = ReplayPolicy(spec.checkpoint)
        else:
            raise ValueError(f"unknown policy kind {spec.kind!r}")
    return _cache[spec]
