"""One expert episode under the published protocol, with everything needed to replay or render it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pokevla.eval.episode import play_episode
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
    init_trial: int | None


class _RecordingExpert:
    """The scripted expert as a policy of `play_episode`, recording what a replay needs and
    (with `action_noise`) executing perturbed translations."""

    needs_images = False

    def __init__(self, env: LiberoEnv, action_noise: float):
        self.env, self.expert, self.action_noise = env, ScriptedExpert(env), action_noise

    def reset(self, env: LiberoEnv) -> None:
        self.expert.reset()
        self.actions, self.commands, self.sim_states, self.robot_states = [], [], [], []
        self.noise = np.zeros(3)
        # drawn only with noise, so a clean rollout leaves the episode's global random stream untouched
        self.rng = np.random.default_rng(np.random.randint(2**32)) if self.action_noise > 0 else None

    def act(self, obs: dict) -> np.ndarray:
        command = self.expert.act(obs)
        action = command
        if self.rng is not None and self.expert.precise:
            self.noise[:] = 0.0  # no lingering offset either: the approach and the grasp stay exact
        elif self.rng is not None:
            innovation = self.rng.normal(0.0, self.action_noise * np.sqrt(1 - NOISE_CORRELATION**2), 3)
            self.noise = NOISE_CORRELATION * self.noise + innovation
            action = command.copy()
            action[:3] = np.clip(action[:3] + self.noise, -1.0, 1.0)
        self.sim_states.append(self.env.get_sim_state())
        self.robot_states.append(obs["observation.state"])
        self.actions.append(action)
        self.commands.append(command)
        return action


def run_episode(env: LiberoEnv, trial: int | None = None, max_steps: int | None = None, *, seed: int | None = None,
                action_noise: float = 0.0) -> Rollout:
    """Resets `env` to init state `trial` (or, with `seed`, to a fresh scene sampled from the BDDL
    regions: demonstrations) and runs the expert until success or `max_steps` (default: the suite's
    published limit), through the same episode loop as every evaluation.

    `action_noise` > 0 adds temporally correlated Gaussian noise (std `action_noise`, in action
    units) to the executed translation commands while the expert keeps commanding from where the
    arm really is (DART, Laskey et al. 2017): its commands then label states off its own path, the
    corrections a cloned policy needs once its errors compound. Fine approaches and gripper changes
    run without noise: perturbed there, the expert hovers at its grasp tolerance for dozens of steps
    and the data would teach hovering. The noise is drawn from the episode's NumPy seed, so a rollout
    is reproducible.
    """
    recorder = _RecordingExpert(env, action_noise)
    start = {"trial": trial} if trial is not None else {"seed": seed}
    outcome = play_episode(env, recorder, env.max_steps if max_steps is None else max_steps, **start)
    dim = env.get_sim_state().shape[0]
    return Rollout(
        success=outcome["success"],
        num_steps=len(recorder.actions),
        actions=np.asarray(recorder.actions, dtype=np.float32).reshape(-1, 7),
        expert_actions=np.asarray(recorder.commands, dtype=np.float32).reshape(-1, 7),
        sim_states=np.asarray(recorder.sim_states, dtype=np.float64).reshape(-1, dim),
        robot_states=np.asarray(recorder.robot_states, dtype=np.float32).reshape(-1, 8),
        fixture_poses=env.fixture_poses(),  # sampled at reset, unchanged by stepping
        init_trial=trial,
    )
