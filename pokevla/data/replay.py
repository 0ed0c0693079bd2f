"""Exact replay of a generated demonstration from what the dataset stores beside it.

`meta/replay/episode_NNNNNN.npz` holds the MuJoCo state before every action, the executed actions
(the dataset's `action` column holds the expert's commands, which differ from them when the
demonstrations were generated with action noise), the fixture placement (sampled at reset and
absent from MuJoCo states) and the task and seed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pokevla.common.errors import DatasetError


@dataclass
class EpisodeReplay:
    suite: str
    task_id: int
    seed: int
    sim_states: np.ndarray  # float64 (T, D)
    actions: np.ndarray  # float32 (T, 7), as executed
    fixture_poses: dict[str, list[float]]

    def observe(self, env, frame: int) -> dict:
        """The observation of `frame` in `env` (a LiberoEnv of the same task, any camera settings)."""
        if (env.config.suite, env.config.task_id) != (self.suite, self.task_id):
            raise DatasetError(f"episode is from {self.suite} task {self.task_id}, the env runs {env.config.suite} task {env.config.task_id}")
        env.set_fixture_poses(self.fixture_poses)
        return env.set_sim_state(self.sim_states[frame])


def load_replay(root: str | Path, episode_index: int) -> EpisodeReplay:
    path = Path(root) / f"meta/replay/episode_{episode_index:06d}.npz"
    if not path.exists():
        raise DatasetError(f"{path} is missing; this dataset stores no replay data for episode {episode_index}")
    with np.load(path) as z:
        return EpisodeReplay(
            suite=str(z["suite"]), task_id=int(z["task_id"]), seed=int(z["seed"]),
            sim_states=z["sim_states"], actions=z["actions"], fixture_poses=json.loads(str(z["fixture_poses"])),
        )
