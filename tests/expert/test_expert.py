"""The scripted expert in the simulator: a small sample of every suite, within the published step limits."""

import numpy as np
import pytest

from pokevla.data.closing import closing_waits
from pokevla.expert.rollout import run_episode
from pokevla.sim.env import EnvConfig, LiberoEnv

pytestmark = pytest.mark.sim

# (suite, task, trial): tasks the expert solves reliably, one per skill family
SAMPLE = [
    ("libero_object", 1, 0),  # cream cheese into the basket, among tall neighbours
    ("libero_spatial", 4, 1),  # bowl out of the top drawer onto the plate (rim grasp)
    ("libero_goal", 0, 2),  # open the middle drawer (handle pinch with the hand level)
    ("libero_goal", 7, 0),  # turn on the stove (knob pinched and turned)
    ("libero_10", 0, 0),  # two-step task: two cans into the basket (free spot for the second)
]


@pytest.mark.parametrize("suite,task,trial", SAMPLE)
def test_expert_solves_sample_within_published_limit(suite, task, trial):
    with LiberoEnv(EnvConfig(suite, task, render=False)) as env:
        rollout = run_episode(env, trial)
        assert rollout.success, f"{suite} task {task} trial {trial} failed after {rollout.num_steps} steps"
        assert rollout.num_steps <= env.max_steps
        assert env.check_success()  # stopped at success, in the success state


def test_rollout_arrays_are_consistent():
    with LiberoEnv(EnvConfig("libero_object", 0, render=False)) as env:
        rollout = run_episode(env, 3, max_steps=40)
        dim = env.get_sim_state().shape[0]
        assert not rollout.success and rollout.num_steps == 40 and rollout.init_trial == 3
        assert rollout.actions.shape == (40, 7) and rollout.actions.dtype == np.float32
        assert rollout.sim_states.shape == (40, dim) and rollout.sim_states.dtype == np.float64
        assert rollout.robot_states.shape == (40, 8) and rollout.robot_states.dtype == np.float32
        assert np.all(np.abs(rollout.actions) <= 1.0)
        assert rollout.fixture_poses == env.fixture_poses()
        # the first recorded state is the settled init state: replaying it gives the first robot state
        obs = env.set_sim_state(rollout.sim_states[0])
        assert np.allclose(obs["observation.state"], rollout.robot_states[0], atol=1e-4)


@pytest.mark.parametrize("task", [1, 2])  # a flat box and a tall bottle: below reach, their grasps used to stall
def test_expert_closes_on_arrival(task):
    """The grasp is a height the hand reaches, so the fingers close as the hand arrives, not after a
    stall timer: a wait of still frames no observation shows (`pokevla.data.closing`)."""
    with LiberoEnv(EnvConfig("libero_object", task, render=False)) as env:
        rollout = run_episode(env, 0)
    waits = closing_waits(rollout.robot_states[:, :3], rollout.expert_actions[:, -1], np.zeros(rollout.num_steps))
    assert rollout.success and len(waits) == 1 and waits[0] <= 3, waits
