"""The LIBERO wrapper: published protocol, image convention, labels and camera geometry."""

import numpy as np
import pytest

from pokevla.common.errors import SimulatorError
from pokevla.sim import suites

pytestmark = pytest.mark.sim
RES = 64


@pytest.fixture(scope="module")
def camera_env():
    from pokevla.sim.env import EnvConfig, LiberoEnv

    env = LiberoEnv(EnvConfig("libero_object", 0, resolution=RES, depth=True, segmentation=True))
    yield env
    env.close()


def test_reset_honours_the_init_state(camera_env):
    env = camera_env
    env.reset(3, settle_steps=0)
    np.testing.assert_allclose(env.get_sim_state()[1:], env.init_state(3)[1:], atol=1e-9)
    env.reset(4, settle_steps=0)
    assert not np.allclose(env.get_sim_state()[1:], env.init_state(3)[1:])


def test_observation_shapes_and_flip(camera_env):
    obs = camera_env.reset(0)
    raw = obs["raw"]
    for view, cam in (("primary", "agentview"), ("wrist", "robot0_eye_in_hand")):
        image = obs[f"observation.images.{view}"]
        assert image.shape == (RES, RES, 3) and image.dtype == np.uint8
        np.testing.assert_array_equal(image, raw[f"{cam}_image"][::-1, ::-1])
        assert obs[f"observation.depth.{view}"].shape == (RES, RES)
        assert obs[f"observation.masks.{view}"].dtype == np.uint8
        assert obs[f"observation.intrinsics.{view}"].shape == (3, 3)
        assert obs[f"observation.extrinsics.{view}"].shape == (4, 4)
    state = obs["observation.state"]
    assert state.shape == (8,) and state.dtype == np.float32
    np.testing.assert_allclose(state[:3], raw["robot0_eef_pos"], atol=1e-6)
    assert camera_env.num_steps == 0


def test_goal_masks_label_only_objects_of_interest(camera_env):
    obs = camera_env.reset(0)
    names = camera_env.instance_names
    interest = camera_env.objects_of_interest  # e.g. [alphabet_soup_1, basket_1]
    for view in ("primary", "wrist"):
        mask, inst = obs[f"observation.masks.{view}"], obs[f"observation.instances.{view}"]
        for k, obj in enumerate(interest, start=1):
            np.testing.assert_array_equal(mask == k, inst == names.index(obj) + 1)
        assert set(np.unique(mask)) <= set(range(len(interest) + 1))
    assert (obs["observation.masks.primary"] > 0).any()


def test_depth_and_cameras_put_objects_where_they_are(camera_env):
    """Unprojecting an object's pixels with depth, K and the extrinsics lands on the object (robot base frame)."""
    env = camera_env
    obs = env.reset(0)
    target = env.objects_of_interest[0]
    body = env.raw_env.obj_body_id[target]
    world_to_base = env._world_to_base()
    centre = (world_to_base @ np.r_[env.sim.data.body_xpos[body], 1.0])[:3]
    for view in ("primary", "wrist"):
        depth, k, t = (obs[f"observation.{x}.{view}"] for x in ("depth", "intrinsics", "extrinsics"))
        v, u = np.nonzero(obs[f"observation.masks.{view}"] == 1)
        z = depth[v, u]
        cam = np.stack([(u + 0.5 - k[0, 2]) / k[0, 0] * z, (v + 0.5 - k[1, 2]) / k[1, 1] * z, z, np.ones_like(z)])
        points = (t @ cam)[:3].T
        assert np.linalg.norm(points.mean(0)[:2] - centre[:2]) < 0.04, view


def test_step_and_action_validation(camera_env):
    camera_env.reset(0)
    obs, success = camera_env.step(np.zeros(7))
    assert success is False and camera_env.num_steps == 1
    with pytest.raises(SimulatorError, match="shape"):
        camera_env.step(np.zeros(6))
    with pytest.raises(SimulatorError, match="init states 0-49"):
        camera_env.reset(50)


def test_fresh_scenes_are_seeded_and_differ_from_init_states():
    from pokevla.sim.env import EnvConfig, LiberoEnv

    with LiberoEnv(EnvConfig("libero_object", 1, render=False)) as env:
        env.reset(seed=7, settle_steps=0)
        a = env.get_sim_state()
        env.reset(seed=8, settle_steps=0)
        b = env.get_sim_state()
        env.reset(seed=7, settle_steps=0)
        np.testing.assert_allclose(env.get_sim_state(), a)
        assert not np.allclose(a, b)
        assert "observation.images.primary" not in env.reset(0)


def test_bad_suite_and_task():
    with pytest.raises(SimulatorError, match="unknown suite"):
        suites.get_suite("libero_nope")
    with pytest.raises(SimulatorError, match="task id 12 does not exist"):
        suites.get_task("libero_goal", 12)
    with pytest.raises(SimulatorError, match="cannot read task list"):
        suites.parse_task_ids("1,x", "libero_goal")
    assert suites.parse_task_ids("0,2-4", "libero_goal") == [0, 2, 3, 4]


def test_libero_90_is_a_suite_with_its_own_step_limit():
    tasks = suites.list_tasks("libero_90")
    assert len(tasks) == 90 and all(t.num_init_states == 50 for t in tasks)
    assert suites.get_suite("libero_90").max_steps == 400
    assert tasks[35].instruction == "open the microwave"


def test_envs_sharing_a_process_render_with_their_own_context(camera_env):
    from pokevla.sim.env import EnvConfig, LiberoEnv

    obs = camera_env.reset(0, settle_steps=0)
    state = camera_env.get_sim_state()
    # another env builds (and makes current) its own context, renders, then frees it
    with LiberoEnv(EnvConfig("libero_object", 1, resolution=RES, depth=True)) as other:
        other.reset(0, settle_steps=0)
        again = camera_env.set_sim_state(state)
        np.testing.assert_array_equal(again["observation.images.primary"], obs["observation.images.primary"])
    after_close = camera_env.set_sim_state(state)
    np.testing.assert_array_equal(after_close["observation.images.primary"], obs["observation.images.primary"])
    np.testing.assert_allclose(after_close["observation.depth.primary"], obs["observation.depth.primary"], atol=1e-3)
