"""The LIBERO environment wrapper every part of PokeVLA uses.

It implements the published evaluation protocol (OpenVLA-OFT, openpi): `env.reset()`, then
`env.set_init_state(init_states[k])` (the reverse order loses the init state), then 10 no-op settle
steps with the gripper open; success is the BDDL goal, checked after every step. Images, depth and
segmentation come out of MuJoCo upside-down (OpenGL rows) and are rotated with `[::-1, ::-1]`, the
convention of the published checkpoints and datasets.

Observation dict (R = resolution; views are "primary" = agentview and "wrist" = eye-in-hand):
    observation.images.<view>      uint8 (R, R, 3)
    observation.state              float32 (8,) eef xyz + eef axis-angle + gripper finger qpos
    observation.depth.<view>       float32 (R, R) metric depth, metres        (depth=True)
    observation.masks.<view>       uint8 (R, R) 0 background, k = k-th object of interest (segmentation=True)
    observation.instances.<view>   int32 (R, R) 0 background, i = instance_names[i-1]   (segmentation=True)
    observation.geoms.<view>       int32 (R, R) MuJoCo geom id seen at each pixel, -1 none   (segmentation=True)
    observation.intrinsics.<view>  float32 (3, 3) pinhole K of the rotated image grid
    observation.extrinsics.<view>  float32 (4, 4) camera (OpenCV axes) -> robot base frame
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import asdict, dataclass

import numpy as np

from pokevla.common.errors import PokeVLAError, SimulatorError
from pokevla.sim import perturb, render, suites

CAMERAS = {"primary": "agentview", "wrist": "robot0_eye_in_hand"}
_FRESH_SCENE_SEED_OFFSET = 100_000  # keeps demo scenes' random streams apart from evaluation trials'
SETTLE_ACTION = np.array([0, 0, 0, 0, 0, 0, -1], dtype=np.float64)  # no motion, gripper open


@dataclass(frozen=True)
class EnvConfig:
    suite: str
    task_id: int
    resolution: int = 256  # published protocol renders 256 px; models resize
    views: tuple[str, ...] = ("primary", "wrist")
    render: bool = True  # False: physics only (scripted rollouts), no images
    depth: bool = False
    segmentation: bool = False
    fast_render: bool = False  # no MSAA, no reflections: faster, but shifts the images; recorded in results
    hard_reset: bool = True  # LIBERO's default rebuilds the model at every reset; False is 5x faster
    seed: int = 0
    perturbation: perturb.Perturbation | None = None  # a LIBERO-Plus robustness variant (pokevla.sim.perturb)
    # std (rad) of the Gaussian noise on each arm joint of a fresh scene's start (robosuite's
    # initialization noise). The official init states were sampled with 0.02 (measured: per-joint std
    # 0.019-0.021 in all four suites); LIBERO's ControlEnv turns it off. Init states override it.
    init_joint_noise: float = 0.0

    def to_dict(self) -> dict:
        data = asdict(self)
        p = self.perturbation
        data["perturbation"] = None if p is None else {"dimension": p.dimension, **p.to_dict()}
        return data


def _import_libero():
    logging.getLogger("robosuite_logs").setLevel(logging.ERROR)  # its "no private macro file" chatter at import
    from libero.libero.envs import OffScreenRenderEnv
    from libero.libero.envs.env_wrapper import ControlEnv

    return OffScreenRenderEnv, ControlEnv


class LiberoEnv:
    """One LIBERO task. Use `reset(trial)` to start trial k from the task's k-th official init state."""

    def __init__(self, config: EnvConfig):
        self.config = config
        self.task = suites.get_task(config.suite, config.task_id)
        self.max_steps = suites.get_suite(config.suite).max_steps
        unknown = [v for v in config.views if v not in CAMERAS]
        if unknown:
            raise SimulatorError(f"unknown view(s) {unknown}; choose from {list(CAMERAS)}")
        if config.render:
            render.select_renderer()
        OffScreenRenderEnv, ControlEnv = _import_libero()
        if config.render:
            render.set_render_mode(config.fast_render)
        if config.init_joint_noise < 0:
            raise SimulatorError(f"init_joint_noise must be >= 0 rad, got {config.init_joint_noise}")
        kwargs = dict(bddl_file_name=perturb.bddl_path(self.task.bddl_path, config.perturbation), hard_reset=config.hard_reset,
                      initialization_noise={"magnitude": config.init_joint_noise, "type": "gaussian"})
        try:
            if config.render:
                self._env = OffScreenRenderEnv(
                    **kwargs,
                    camera_names=[CAMERAS[v] for v in config.views],
                    camera_heights=config.resolution,
                    camera_widths=config.resolution,
                    camera_depths=config.depth,
                )
            else:
                self._env = ControlEnv(**kwargs, has_offscreen_renderer=False, use_camera_obs=False)
        except Exception as e:  # a broken GL stack surfaces here, deep inside robosuite
            raise SimulatorError(f"could not create {config.suite} task {config.task_id}: {type(e).__name__}: {e}") from e
        self._env.seed(config.seed)
        try:
            self._init_states = perturb.init_states(config.perturbation, suites.init_states(config.suite, config.task_id),
                                                    state_size=self._env.get_sim_state().shape[0])
        except PokeVLAError:  # a scene whose state does not fit its task: free the simulator just built
            self.close()
            raise
        self._mask_lut: np.ndarray | None = None
        self._inst_lut: np.ndarray | None = None
        self.num_steps = 0  # policy steps since the last reset (settle steps not counted)
        self.start: tuple[str, int] | None = None  # ("trial", k) or ("seed", s) of the current episode
        self._perturber = perturb.attach(config.perturbation, self)

    # ----------------------------------------------------------------- protocol
    @property
    def instruction(self) -> str:
        """What the policy is told: the task's instruction, or a language variant's rewrite."""
        if isinstance(self.config.perturbation, perturb.LanguageSpec):
            return self.config.perturbation.instruction
        return self.task.instruction

    @property
    def num_trials(self) -> int:
        return len(self._init_states)

    def init_state(self, trial: int) -> np.ndarray:
        if not len(self._init_states):
            raise SimulatorError(f"{self.config.suite} task {self.config.task_id} under this layout has no init states; "
                                 "start its episodes from a seed (reset(seed=s))")
        if not 0 <= trial < len(self._init_states):
            raise SimulatorError(f"{self.config.suite} task {self.config.task_id} has init states 0-{len(self._init_states) - 1}, not {trial}")
        return self._init_states[trial]

    def reset(self, trial: int | None = None, *, seed: int | None = None, settle_steps: int = suites.SETTLE_STEPS) -> dict:
        """Starts an episode and returns its first observation.

        trial=k: the published protocol from the task's official init state k (reset, set_init_state,
        settle). seed=s instead: a fresh scene sampled from the BDDL placement regions, for
        demonstrations, so that evaluation's init states stay unseen. The global NumPy seed (which
        LIBERO's placement samplers and fixture jitter use) is set from (config.seed, trial or seed)
        before every reset, so an episode does not depend on which worker ran what before it.
        The policy never sees the frames of reset and settling, so the cameras are switched off
        until the last one (12 renders saved per episode).
        """
        if (trial is None) == (seed is None):
            raise SimulatorError("reset needs exactly one of trial (official init state) or seed (fresh scene)")
        state = self.init_state(trial) if trial is not None else None
        episode_key = trial if trial is not None else _FRESH_SCENE_SEED_OFFSET + seed
        self._env.seed(self.config.seed * 1_000_003 + episode_key)
        self._make_gl_current()
        with self._cameras_off():
            self._env.reset()
            if state is not None:
                self._env.set_init_state(self._perturber.prepare_state(self, state))
            self._perturber.after_reset(self)  # a hard reset rebuilt the model: re-apply model edits
            for _ in range(settle_steps):
                self._env.step(SETTLE_ACTION)
        self._perturber.start_episode(episode_key)
        self._mask_lut = self._inst_lut = None  # instance ids are re-derived after a (possibly hard) reset
        self.num_steps = 0
        self.start = ("trial", trial) if trial is not None else ("seed", seed)
        return self._observe(self._env.env._get_observations(force_update=True))

    def step(self, action: np.ndarray) -> tuple[dict, bool]:
        """Executes one 7-dim action; returns (observation, success)."""
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (7,):
            raise SimulatorError(f"action must have shape (7,), got {action.shape}")
        self._make_gl_current()
        raw, _, done, _ = self._env.step(action)
        self.num_steps += 1
        return self._observe(raw), bool(done)

    def check_success(self) -> bool:
        return bool(self._env.check_success())

    # ------------------------------------------------------- privileged access
    @property
    def raw_env(self):
        """The robosuite task environment (objects, fixtures, BDDL parse, MuJoCo sim)."""
        return self._env.env

    @property
    def sim(self):
        return self._env.env.sim

    def get_sim_state(self) -> np.ndarray:
        return self._env.get_sim_state().copy()

    def set_sim_state(self, state: np.ndarray) -> dict:
        """Restores a flattened MuJoCo state (time, qpos, qvel) and returns its observation."""
        self._make_gl_current()
        return self._observe(self._env.regenerate_obs_from_state(state))

    def fixture_poses(self) -> dict[str, list[float]]:
        """Fixture placement (pos xyz + quat wxyz): sampled at every reset and absent from sim states."""
        model = self.sim.model
        poses = {}
        for name, fixture in self.raw_env.fixtures_dict.items():
            body = model.body_name2id(fixture.root_body)
            poses[name] = [*map(float, model.body_pos[body]), *map(float, model.body_quat[body])]
        return poses

    def set_fixture_poses(self, poses: dict[str, list[float]]) -> None:
        model = self.sim.model
        for name, pose in poses.items():
            if name not in self.raw_env.fixtures_dict:
                raise SimulatorError(f"fixture {name!r} is not in {self.config.suite} task {self.config.task_id}")
            body = model.body_name2id(self.raw_env.fixtures_dict[name].root_body)
            model.body_pos[body] = pose[:3]
            model.body_quat[body] = pose[3:]
        self.sim.forward()

    @property
    def objects_of_interest(self) -> list[str]:
        return list(self.raw_env.obj_of_interest)

    @property
    def instance_names(self) -> list[str]:
        return list(self.raw_env.model.instances_to_ids.keys())

    def close(self) -> None:
        if getattr(self, "_env", None) is not None:
            # Free the GL context now: left to garbage collection it may outlive robosuite's EGL
            # display (terminated at exit) and print a screenful of EGL errors.
            context = getattr(self.sim, "_render_context_offscreen", None)
            if context is not None:
                self._make_gl_current()  # MjrContext.free deletes GL objects of whichever context is current
                context.con.free()
                try:
                    context.gl_ctx.free()
                except Exception as e:  # EGL_NOT_INITIALIZED: the display is already gone (interpreter exit)
                    if "EGL" not in type(e).__name__:
                        raise
            self._env.close()
            self._env = None

    def __enter__(self) -> "LiberoEnv":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------ observations
    @contextlib.contextmanager
    def _cameras_off(self):
        cameras = [o for o in self.raw_env._observables.values() if o.modality == "image"]
        for observable in cameras:
            observable.set_enabled(False)
        try:
            yield
        finally:
            for observable in cameras:
                observable.set_enabled(True)

    def _make_gl_current(self) -> None:
        # robosuite makes a render context current only when it creates it, so with several envs in
        # one process (or after another env was closed) the cameras would draw with the wrong one.
        context = getattr(self.sim, "_render_context_offscreen", None) if self.config.render else None
        if context is not None:
            context.gl_ctx.make_current()

    def _observe(self, raw: dict) -> dict:
        obs = {"observation.state": robot_state(raw), "raw": raw}
        if not self.config.render:
            return obs
        from robosuite.utils import camera_utils

        res = self.config.resolution
        for view in self.config.views:
            cam = CAMERAS[view]
            image = np.ascontiguousarray(raw[f"{cam}_image"][::-1, ::-1])
            obs[f"observation.images.{view}"] = self._perturber.primary_image(image) if view == "primary" else image
            if self.config.depth:
                depth = camera_utils.get_real_depth_map(self.sim, raw[f"{cam}_depth"])
                obs[f"observation.depth.{view}"] = np.ascontiguousarray(depth[::-1, ::-1, 0], dtype=np.float32)
            if self.config.segmentation:
                geoms = self._render_geoms(cam, res)
                lut = self._instance_lut()
                inst = np.where(geoms >= 0, lut[np.clip(geoms, 0, len(lut) - 1)], 0).astype(np.int32)
                obs[f"observation.geoms.{view}"] = geoms
                obs[f"observation.instances.{view}"] = inst
                obs[f"observation.masks.{view}"] = self._goal_mask_lut()[inst]
            k, t = camera_matrices(self.sim, cam, res)
            obs[f"observation.intrinsics.{view}"] = k
            obs[f"observation.extrinsics.{view}"] = self._world_to_base() @ t
        return obs

    def _render_geoms(self, camera: str, resolution: int) -> np.ndarray:
        """Geom ids (R, R) int32 of the rotated image, -1 where no geom is seen; instances are looked up
        from them (a geom -> instance table, not a per-pixel Python map).

        Rendered here rather than by robosuite's segmentation sensor, which shrinks every site of the
        model for good, so that the RGB images match evaluation's pixel for pixel (sites are hidden
        only during this pass).
        """
        import mujoco

        model = self.sim.model
        sizes = model.site_size.copy()
        model.site_size[:] = 1e-8  # sites must not cover objects in the masks
        try:
            seg = self.sim.render(camera_name=camera, width=resolution, height=resolution, depth=False, segmentation=True)
        finally:
            model.site_size[:] = sizes
        ids, types = seg[::-1, ::-1, 1], seg[::-1, ::-1, 0]
        return np.where((types == mujoco.mjtObj.mjOBJ_GEOM) & (ids >= 0), ids, -1).astype(np.int32)

    def _instance_lut(self) -> np.ndarray:
        """geom id -> instance id + 1 (0 for geoms of no instance: table, floor, walls)."""
        if self._inst_lut is None:
            names = {name: i + 1 for i, name in enumerate(self.instance_names)}
            lut = np.zeros(self.sim.model.ngeom, dtype=np.int32)
            for geom, name in self.raw_env.model.geom_ids_to_instances.items():
                lut[geom] = names[name]
            self._inst_lut = lut
        return self._inst_lut

    def _goal_mask_lut(self) -> np.ndarray:
        """Maps instance id -> goal label (k for the k-th object of interest, else 0)."""
        if self._mask_lut is None:
            names = self.instance_names
            lut = np.zeros(len(names) + 1, dtype=np.uint8)
            for k, obj in enumerate(self.objects_of_interest, start=1):
                if obj in names:
                    lut[names.index(obj) + 1] = k
            self._mask_lut = lut
        return self._mask_lut

    def _world_to_base(self) -> np.ndarray:
        robot = self.raw_env.robots[0]
        body = self.sim.model.body_name2id(robot.robot_model.root_body)
        base = np.eye(4)
        base[:3, :3] = self.sim.data.body_xmat[body].reshape(3, 3)
        base[:3, 3] = self.sim.data.body_xpos[body]
        return np.linalg.inv(base)


def robot_state(raw: dict) -> np.ndarray:
    """8-dim proprioception of the published LIBERO setups: eef pos, eef axis-angle, finger qpos."""
    from robosuite.utils.transform_utils import quat2axisangle

    return np.concatenate(
        [raw["robot0_eef_pos"], quat2axisangle(raw["robot0_eef_quat"]), raw["robot0_gripper_qpos"]]
    ).astype(np.float32)


def camera_matrices(sim, camera: str, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """Intrinsics K and camera->world pose (OpenCV axes) for the image rotated by `[::-1, ::-1]`.

    robosuite's K describes the upright image (row 0 at the top). MuJoCo returns rows bottom-first,
    so the rotated image equals the upright one mirrored left-right: column u of the rotated image is
    column (W - u) of the upright one, i.e. fx changes sign and cx becomes W - cx.
    """
    from robosuite.utils import camera_utils

    k = camera_utils.get_camera_intrinsic_matrix(sim, camera, resolution, resolution)
    k[0, 0] = -k[0, 0]
    k[0, 2] = resolution - k[0, 2]
    pose = camera_utils.get_camera_extrinsic_matrix(sim, camera)
    return k.astype(np.float32), pose
