"""Episode starts other than the official init states: the scenes a dataset's demonstrations began in.

The success ladder separates where a policy loses its success: (a) the dataset's executed actions
replayed open loop from their own starts (is the data itself reproducible?), (b) the policy from its
training starts (can it do what it saw?), (c) the policy from the official init states (does it
generalise to the evaluation's starts?). (a) and (b) need the demonstrations' own scenes: a generated
episode is the fresh scene of its seed, under the generator's base seed and start noise, so the same
`reset(seed=...)` rebuilds it exactly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from pokevla.common.errors import DatasetError


@dataclass(frozen=True)
class DatasetStarts:
    """Where each trial of a task starts: trial k = the k-th episode of that task in `dataset`."""

    dataset: str
    base_seed: int  # the generator's --seed (EnvConfig.seed of the episodes' envs)
    init_joint_noise: float
    trials: dict[int, list[tuple[int, int]]]  # task_id -> [(dataset episode index, scene seed)], dataset order

    def seed(self, task_id: int, trial: int) -> int:
        return self.trials[task_id][trial][1]

    def episode_of(self, task_id: int, seed: int) -> int:
        """The dataset episode that started from `seed` in task `task_id`."""
        return next(episode for episode, s in self.trials[task_id] if s == seed)

    def count(self, task_id: int) -> int:
        return len(self.trials.get(task_id, ()))


@lru_cache(maxsize=8)
def dataset_starts(root: str, suite: str) -> DatasetStarts:
    """The starts of a dataset written by `pokevla generate demos` for `suite`; a clear error otherwise."""
    from pokevla.data.reader import DatasetReader

    reader = DatasetReader(root)
    generator = reader.info.get("pokevla", {}).get("generator")
    if not isinstance(generator, dict) or "seed" not in generator:
        raise DatasetError(f"{root} was not written by `pokevla generate demos`: its episodes' scenes cannot be rebuilt")
    if generator.get("suite") != suite:
        raise DatasetError(f"{root} holds {generator.get('suite')} demonstrations, not {suite}; use --suite {generator.get('suite')}")
    trials: dict[int, list[tuple[int, int]]] = {}
    for index, episode in enumerate(reader.episodes):
        extra = json.loads(episode.get("pokevla/extra") or "{}")  # the generator's bookkeeping of each episode
        task_id, seed = extra.get("task_id"), extra.get("seed")
        if task_id is None or seed is None:
            raise DatasetError(f"{root}: episode {index} records no task_id / seed; regenerate it with `pokevla generate demos`")
        trials.setdefault(int(task_id), []).append((index, int(seed)))
    return DatasetStarts(str(root), int(generator["seed"]), float(generator.get("init_joint_noise", 0.0)), trials)


class ReplayPolicy:
    """Plays a demonstration's executed actions back, open loop: rung (a) of the ladder."""

    needs_images = False

    def __init__(self, dataset: str):
        self.dataset = dataset
        self._actions: np.ndarray | None = None
        self._t = 0

    def reset(self, env) -> None:
        from pokevla.data.replay import load_replay

        kind, value = env.start
        if kind != "seed":
            raise DatasetError("the replay policy plays demonstrations back from their own scenes: evaluate it with --starts DATASET")
        starts = dataset_starts(self.dataset, env.config.suite)
        self._actions, self._t = load_replay(self.dataset, starts.episode_of(env.config.task_id, value)).actions, 0

    def act(self, obs: dict) -> np.ndarray:
        # past the recorded end (the demonstration succeeded there) hold still with the last gripper command
        if self._t >= len(self._actions):
            return np.array([0, 0, 0, 0, 0, 0, self._actions[-1, 6]], dtype=np.float64)
        action = self._actions[self._t]
        self._t += 1
        return np.asarray(action, dtype=np.float64)

