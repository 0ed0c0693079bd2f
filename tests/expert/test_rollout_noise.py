"""Action noise in expert rollouts (DART-style demonstrations)."""

import numpy as np
import pytest

from pokevla.expert.rollout import run_episode
from pokevla.sim.env import EnvConfig, LiberoEnv

pytestmark = pytest.mark.sim


def test_noisy_rollout_is_reproducible_and_keeps_the_expert_commands():
    with LiberoEnv(EnvConfig("libero_object", 0, render=False)) as env:
        first = run_episode(env, 0, max_steps=30, action_noise=0.3)
        again = run_episode(env, 0, max_steps=30, action_noise=0.3)
        clean = run_episode(env, 0, max_steps=30)
    np.testing.assert_array_equal(first.actions, again.actions)  # the noise follows the episode seed
    assert np.abs(first.actions[:, :3] - first.expert_actions[:, :3]).max() > 0.1
    # the expert reacts to where the noise pushed the arm: its commands differ from the clean run's
    assert not np.allclose(first.expert_actions, clean.expert_actions)
