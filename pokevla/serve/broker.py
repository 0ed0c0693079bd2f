"""From predicted action chunks to one action per control step (numpy only: runs on the robot side).

A policy predicts a chunk of T actions per query. `ActionChunkBroker` executes `execute_steps` of
each chunk and then asks again, or, with `ensemble_decay` set, asks at every step and averages all
predictions made for the current step (ACT's temporal ensembling: the i-th oldest prediction has
weight exp(-decay * i), so decay 0 is a plain mean and a larger decay trusts older plans more).
The gripper dimensions of an ensembled action are set to the sign of their average: a half-closed
command would mean nothing to a binary gripper.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence

import numpy as np

ChunkFn = Callable[[dict], np.ndarray]  # observation -> actions float32 (T, D)


class ActionChunkBroker:
    def __init__(self, predict_chunk: ChunkFn, execute_steps: int, ensemble_decay: float | None = None,
                 gripper_dims: Sequence[int] = (-1,)):
        if execute_steps < 1:
            raise ValueError(f"execute_steps must be at least 1, got {execute_steps}")
        if ensemble_decay is not None and ensemble_decay < 0:
            raise ValueError(f"ensemble_decay must be >= 0, got {ensemble_decay}")
        self.predict_chunk, self.execute_steps = predict_chunk, execute_steps
        self.ensemble_decay, self.gripper_dims = ensemble_decay, tuple(gripper_dims)
        self.reset()

    def reset(self) -> None:
        """A new episode: forget queued actions and past plans."""
        self._queue: deque[np.ndarray] = deque()
        self._plans: deque[tuple[int, np.ndarray]] = deque()  # (step the chunk starts at, chunk (T, D))
        self._step = 0

    def act(self, observation: dict) -> np.ndarray:
        """The action (D,) for this control step."""
        if self.ensemble_decay is None:
            if not self._queue:
                chunk = np.asarray(self.predict_chunk(observation), dtype=np.float32)
                self._queue.extend(chunk[: self.execute_steps])
            action = self._queue.popleft()
        else:
            action = self._ensembled(observation)
        self._step += 1
        return action

    def _ensembled(self, observation: dict) -> np.ndarray:
        chunk = np.asarray(self.predict_chunk(observation), dtype=np.float32)
        self._plans.append((self._step, chunk))
        while self._plans and self._step - self._plans[0][0] >= len(self._plans[0][1]):
            self._plans.popleft()  # a plan that ended before this step
        predictions = np.stack([plan[self._step - start] for start, plan in self._plans])  # oldest first
        weights = np.exp(-self.ensemble_decay * np.arange(len(predictions), dtype=np.float64))
        action = (weights[:, None] * predictions).sum(0) / weights.sum()
        for d in self.gripper_dims:
            action[d] = 1.0 if action[d] > 0 else -1.0
        return action.astype(np.float32)
