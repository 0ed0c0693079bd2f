"""One expert episode under the published protocol, with everything needed to replay or render it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pokevla.expert.policy import ScriptedExpert
from pokevla.sim.env import LiberoEnv


@dataclass
class Rollout:
    success: bool
    num_steps: int  # policy steps taken (settle steps excluded)
    actions: np.ndarray  # float32 (T, 7), the actions executed
    sim_states: np.ndarray  # float64 (T, D), flattened MuJoCo state before each action
    robot_states: np.ndarray  # float32 (T, 8), obs["observation.state"] before each action
    fixture_poses: dict  # env.fixture_poses() of this episode (fixture placement is not in sim states)
    init_trial: int


def run_episode(env: LiberoEnv, trial: int | None = None, max_steps: int | None = None, stop_on_success: bool = True,
                expert: ScriptedExpert | None = None, on_step=None, *, seed: int | None = None) -> Rollout:
    """Resets `env` to init state `trial` (or, with `seed`, to a fresh scene sampled from the BDDL
    regions: demonstrations), runs the expert for at most `max_steps` (default: the suite's
    published limit) and stops at the first success unless told otherwise.

    `expert` reuses a ScriptedExpert bound to `env`; `on_step(obs)` sees every observation
    (the first included), e.g. to record video frames.
    """
    limit = env.max_steps if max_steps is None else max_steps
    expert = expert if expert is not None else ScriptedExpert(env)
    obs = env.reset(trial, seed=seed)
    expert.reset()
    fixture_poses = env.fixture_poses()
    actions, sim_states, robot_states = [], [], []
    success = False
    if on_step is not None:
        on_step(obs)
    for _ in range(limit):
        action = expert.act(obs)
        sim_states.append(env.get_sim_state())
        robot_states.append(obs["observation.state"])
        actions.append(action)
        obs, done = env.step(action)
        if on_step is not None:
            on_step(obs)
        success = success or done
        if success and stop_on_success:
            break
    dim = env.get_sim_state().shape[0]
    return Rollout(
        success=success,
        num_steps=len(actions),
        actions=np.asarray(actions, dtype=np.float32).reshape(-1, 7),
        sim_states=np.asarray(sim_states, dtype=np.float64).reshape(-1, dim),
        robot_states=np.asarray(robot_states, dtype=np.float32).reshape(-1, 8),
        fixture_poses=fixture_poses,
        init_trial=trial,
    )
