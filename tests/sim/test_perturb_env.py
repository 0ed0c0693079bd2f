"""Each dimension changes what it should in the simulator and nothing else (small: 32 px renders)."""

from pathlib import Path

import numpy as np
import pytest

from pokevla.sim.perturb import (
    BackgroundSpec, CameraSpec, LanguageSpec, LayoutSpec, LightSpec, NoiseSpec, RobotSpec, camera, layout, robot,
)

pytestmark = pytest.mark.sim
SUITE, TASK, RES = "libero_spatial", 0, 32


def make_env(spec=None, **kw):
    from pokevla.sim.env import EnvConfig, LiberoEnv

    return LiberoEnv(EnvConfig(SUITE, TASK, resolution=RES, perturbation=spec, **kw))


@pytest.fixture(scope="module")
def base():
    """The unperturbed env's first observation, sim state and model values after reset(0)."""
    env = make_env()
    obs = env.reset(0)
    m = env.sim.model
    ref = {"obs": obs, "state": env.get_sim_state(), "cam_pos": m.cam_pos.copy(), "cam_quat": m.cam_quat.copy(),
           "light_diffuse": m.light_diffuse.copy(), "tex_data": m._model.tex_data.copy(), "mat_rgba": m.mat_rgba.copy()}
    env.close()
    return ref


def _same_physics(env, base):
    np.testing.assert_allclose(env.get_sim_state()[1:], base["state"][1:], atol=1e-9)


def test_camera_moves_only_the_third_person_camera(base):
    spec = CameraSpec(4, "orbit", azimuth_deg=-50, elevation_deg=15)
    with make_env(spec) as env:
        for _ in range(2):  # hard reset rebuilds the model: the pose must be re-applied
            obs = env.reset(0)
            m = env.sim.model
            cid = m.camera_name2id("agentview")
            pos, quat = camera.camera_pose(spec, base["cam_pos"][cid], base["cam_quat"][cid])
            np.testing.assert_allclose(m.cam_pos[cid], pos)
            np.testing.assert_allclose(m.cam_quat[cid], quat)
            others = np.arange(m.ncam) != cid
            np.testing.assert_array_equal(m.cam_pos[others], base["cam_pos"][others])
            _same_physics(env, base)
            np.testing.assert_array_equal(obs["observation.images.wrist"], base["obs"]["observation.images.wrist"])
            assert np.abs(obs["observation.images.primary"].astype(int) - base["obs"]["observation.images.primary"]).mean() > 5


def test_noise_touches_only_third_person_pixels_and_is_seeded(base):
    spec = NoiseSpec(3, "fog", severity=5, seed=11)  # random per frame: the episode key re-seeds it
    with make_env(spec) as env:
        first = env.reset(0)
        again = env.reset(0)
        _same_physics(env, base)
    np.testing.assert_array_equal(first["observation.images.wrist"], base["obs"]["observation.images.wrist"])
    np.testing.assert_array_equal(first["observation.images.primary"], again["observation.images.primary"])
    clean = base["obs"]["observation.images.primary"].astype(int)
    assert np.abs(first["observation.images.primary"].astype(int) - clean).mean() > 10
    np.testing.assert_array_equal(first["raw"]["agentview_image"], base["obs"]["raw"]["agentview_image"])  # raw stays clean


def test_robot_starts_at_q0_plus_m_u_with_the_controller_target_there(base):
    spec = RobotSpec(3, "init_joints", magnitude=0.3, direction=robot.random_direction(np.random.default_rng(5)))
    with make_env(spec) as env:
        for _ in range(2):
            env.reset(0, settle_steps=0)
            arm = env.raw_env.robots[0]
            q = env.sim.data.qpos[arm._ref_joint_pos_indexes]
            np.testing.assert_allclose(q, robot.target_qpos(spec), atol=1e-9)
            np.testing.assert_allclose(np.linalg.norm(q - robot.Q0), 0.3, atol=1e-9)
            np.testing.assert_allclose(arm.controller.initial_joint, robot.target_qpos(spec), atol=1e-9)
            # everything but the arm is the official init state
            state, ref = env.get_sim_state(), env.init_state(0)
            nq = env.sim.model.nq
            rest = np.setdiff1d(np.arange(1, 1 + nq), 1 + np.asarray(arm._ref_joint_pos_indexes))
            np.testing.assert_allclose(state[rest], ref[rest], atol=1e-9)


def test_light_and_background_change_the_model_not_the_physics(base):
    light = LightSpec(3, "shadow", diffuse=(0.3, 0.2, 0.1), direction=(0.5, 0.0, -0.8), castshadow=True)
    with make_env(light) as env:
        for _ in range(2):
            obs = env.reset(0)
            m = env.sim.model
            np.testing.assert_allclose(m.light_diffuse, [[0.3, 0.2, 0.1]] * m.nlight)
            assert m.light_castshadow.all()
            _same_physics(env, base)
    assert obs["observation.images.primary"].mean() < base["obs"]["observation.images.primary"].mean() - 10
    bg = BackgroundSpec(4, "theme", table_texture="procedural:checker", table_rgb=(1.0, 0.5, 0.5),
                        wall_texture="asset:dark_blue_wall", texture_seed=2)
    with make_env(bg) as env:
        for _ in range(2):
            obs = env.reset(0)
            m = env.sim.model
            changed = m._model.tex_data != base["tex_data"]
            assert changed.sum() > 100_000  # table and wall pixels
            _same_physics(env, base)
            table_mat = m.geom_matid[m.geom_name2id("table_visual")]
            np.testing.assert_allclose(m.mat_rgba[table_mat, :3], (1.0, 0.5, 0.5))
    assert np.abs(obs["observation.images.primary"].astype(int) - base["obs"]["observation.images.primary"]).mean() > 5


def test_a_restyled_block_shows_the_background_and_then_the_scene_own_again(base):
    from pokevla.sim.perturb.background import restyled

    bg = BackgroundSpec(2, "theme", table_texture="asset:dark_blue_wall", table_rgb=(0.9, 0.9, 0.9),
                        wall_texture="procedural:stripes", texture_seed=3)
    with make_env() as env:
        env.reset(0)
        m = env.sim.model
        before = env.set_sim_state(base["state"])["observation.images.primary"]
        with restyled(env, bg):
            assert (m._model.tex_data != base["tex_data"]).sum() > 100_000
            inside = env.set_sim_state(base["state"])["observation.images.primary"]
        np.testing.assert_array_equal(m._model.tex_data, base["tex_data"])
        np.testing.assert_array_equal(m.mat_rgba, base["mat_rgba"])
        after = env.set_sim_state(base["state"])["observation.images.primary"]
        with restyled(env, None):
            np.testing.assert_array_equal(m._model.tex_data, base["tex_data"])
    assert np.abs(inside.astype(int) - before.astype(int)).mean() > 5
    np.testing.assert_array_equal(after, before)


def test_a_moved_block_moves_the_camera_and_then_back(base):
    spec = CameraSpec(2, "orbit", azimuth_deg=25, elevation_deg=15)
    with make_env() as env:
        env.reset(0)
        m = env.sim.model
        cid = m.camera_name2id("agentview")
        with camera.moved(env, spec):
            pos, quat = camera.camera_pose(spec, base["cam_pos"][cid], base["cam_quat"][cid])
            np.testing.assert_allclose(m.cam_pos[cid], pos)
            np.testing.assert_allclose(m.cam_quat[cid], quat)
        np.testing.assert_array_equal(m.cam_pos, base["cam_pos"])
        np.testing.assert_array_equal(m.cam_quat, base["cam_quat"])


def test_language_variant_changes_only_the_instruction(base):
    spec = LanguageSpec(1, "paraphrase", instruction="Kindly move the dark bowl onto the dish.")
    with make_env(spec) as env:
        obs = env.reset(0)
        assert env.instruction == spec.instruction
        _same_physics(env, base)
        np.testing.assert_array_equal(obs["observation.images.primary"], base["obs"]["observation.images.primary"])


def test_layout_shift_moves_the_objects_by_the_stated_offset(base):
    spec = LayoutSpec(2, "shift", shifts=(("akita_black_bowl_1", -0.04, -0.035),))
    with make_env(spec, render=False) as env:
        env.reset(0, settle_steps=0)
        addr = env.sim.model.get_joint_qpos_addr(env.raw_env.objects_dict["akita_black_bowl_1"].joints[-1])[0]
        delta = env.sim.data.qpos[addr : addr + 3] - env.init_state(0)[1 + addr : 1 + addr + 3]
        np.testing.assert_allclose(delta, [-0.04, -0.035, 0.0], atol=1e-9)
        assert layout.check_layout(env, spec) is None
        bad = LayoutSpec(2, "shift", shifts=(("akita_black_bowl_1", 0.125, 0.0),))  # onto the plate
    with make_env(bad, render=False) as env:
        assert layout.check_layout(env, bad) is not None


def test_layout_scene_builds_its_bddl_and_starts_from_its_own_state(base):
    """An official jittered layout: the task's BDDL with a region moved, started from its one saved state."""
    from pokevla.common.errors import ConfigError
    from pokevla.sim import suites

    text = Path(suites.get_task(SUITE, TASK).bddl_path).read_text()
    moved = text.replace("(:language", ";; regions of the variant\n  (:language", 1)
    state = base["state"].copy()
    with make_env(render=False) as env:  # the bowl moved 3 cm in the saved state
        addr = env.sim.model.get_joint_qpos_addr(env.raw_env.objects_dict["akita_black_bowl_1"].joints[-1])[0]
    state[1 + addr] += 0.03
    spec = LayoutSpec(2, "scene", bddl_text=moved, sim_state=tuple(state))
    with make_env(spec, render=False) as env:
        assert env.num_trials == 1 and Path(env.raw_env.bddl_file_name).read_text() == moved
        env.reset(0, settle_steps=0)
        np.testing.assert_allclose(env.get_sim_state()[1:], state[1:], atol=1e-9)
    with pytest.raises(ConfigError, match="another scene"):
        make_env(LayoutSpec(2, "scene", bddl_text=moved, sim_state=tuple(state[:-1])), render=False)


def test_layout_distractors_add_settled_objects():
    spec = LayoutSpec(2, "distractors", distractors=(("ketchup", 0.15, -0.05), ("milk", -0.15, -0.1)), scene_seed=3)
    with make_env(spec, render=False) as env:
        assert layout.check_layout(env, spec) is None
        names = list(env.raw_env.objects_dict)
        assert names[-2:] == ["ketchup_pokevla_0", "milk_pokevla_1"]
        body = env.sim.model.body_name2id(env.raw_env.objects_dict["ketchup_pokevla_0"].root_body)
        np.testing.assert_allclose(env.sim.data.body_xpos[body][:2], (0.15, -0.05), atol=0.03)


def test_layout_variant_draws_the_kind_asked_for():
    from pokevla.robustness.build import layout_variant, movable_objects
    from pokevla.sim import suites

    task = suites.get_task("libero_spatial", 0)
    rng = np.random.default_rng(0)
    shift = layout_variant(task, 1, rng, log=lambda _: None, kind="shift")
    assert shift.kind == "shift" and {name for name, _, _ in shift.shifts} <= set(movable_objects("libero_spatial", 0))
    assert layout_variant(task, 1, rng, log=lambda _: None, kind="distractors").distractors
