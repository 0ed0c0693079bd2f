"""One expert episode under the published protocol, with everything needed to replay or render it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pokevla.expert.policy import ScriptedExpert
from pokevla.sim.env import LiberoEnv


NOISE_CORRELATION = 0.8  # AR(1) coefficient per step: the perturbation persists ~5 steps (0.25 s)


@dataclass
class Rollout:
    success: bool
    num_steps: int  # policy steps taken (settle steps excluded)
    actions: np.ndarray  # float32 (T, 7), the actions executed
    expert_actions: np.ndarray  # float32 (T, 7), the expert's commands (== actions without noise)
    sim_states: np.ndarray  # float64 (T, D), flattened MuJoCo state before each action
    robot_states: np.ndarray  # float32 (T, 8), obs["observation.state"] before each action
    fixture_poses: dict  # env.fixture_poses() of this episode (fixture placement is not in sim states)
    init_trial: int


def run_episode(env: LiberoEnv, trial: int | None = None, max_steps: int | None = None, stop_on_success: bool = True,
                expert: ScriptedExpert | None = None, on_step=None, *, seed: int | None = None,
                action_noise: float = 0.0) -> Rollout:
    """Resets `env` to init state `trial` (or, with `seed`, to a fresh scene sampled from the BDDL
    regions: demonstrations), runs the expert for at most `max_steps` (default: the suite's
    published limit) and stops at the first success unless told otherwise.

    `expert` reuses a ScriptedExpert bound to `env`; `on_step(obs)` sees every observation
    (the first included), e.g. to record video frames.

    `action_noise` > 0 adds temporally correlated Gaussian noise (std `action_noise`, in action
    units) to the executed translation commands while the expert keeps commanding from where the
    arm really is (DART, Laskey et al. 2017): its commands then label states off its own path, the
    corrections a cloned policy needs once its errors compound. The noise is drawn from the
    episode's NumPy seed, so a rollout is reproducible.
    """
    limit = env.max_steps if max_steps is None else max_steps
    expert = expert if expert is not None else ScriptedExpert(env)
    obs = env.reset(trial, seed=seed)
    expert.reset()
    fixture_poses = env.fixture_poses()
    actions, expert_actions, sim_states, robot_states = [], [], [], []
    noise, rng = np.zeros(3), np.random.default_rng(np.random.randint(2**32))  # follows the episode's seed
    success = False
    if on_step is not None:
        on_step(obs)
    for _ in range(limit):
        command = expert.act(obs)
        action = command
        if action_noise > 0:
            innovation = rng.normal(0.0, action_noise * np.sqrt(1 - NOISE_CORRELATION**2), 3)
            noise = NOISE_CORRELATION * noise + innovation
            action = command.copy()
            action[:3] = np.clip(action[:3] + noise, -1.0, 1.0)
        sim_states.append(env.get_sim_state())
        robot_states.append(obs["observation.state"])
        actions.append(action)
        expert_actions.append(command)
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
        expert_actions=np.asarray(expert_actions, dtype=np.float32).reshape(-1, 7),
        sim_states=np.asarray(sim_states, dtype=np.float64).reshape(-1, dim),
        robot_states=np.asarray(robot_states, dtype=np.float32).reshape(-1, 8),
        fixture_poses=fixture_poses,
        init_trial=trial,
    )
