"""Robot dimension: the arm starts at q0 + magnitude * direction.

LIBERO-Plus overrides the robot model's `init_qpos`; robosuite's reset then puts the arm there and builds
the OSC controller with it as the nullspace posture target. The standard `set_init_state` that follows
restores the recorded joints (~q0), so in the original the arm starts at q0 and drifts towards the
target. We set `init_qpos` the same way (controller target) and also write it into the init state's
arm entries, so the episode really starts at the perturbed joints, as the published definition says.
"""

from __future__ import annotations

import numpy as np

from pokevla.sim.perturb.base import Perturber
from pokevla.sim.perturb.spec import RobotSpec

Q0 = np.array([0.0, -0.161037389, 0.0, -2.44459747, 0.0, 2.22675220, np.pi / 4])  # MountedPanda.init_qpos


def random_direction(rng: np.random.Generator) -> tuple[float, ...]:
    """A uniformly random unit 7-vector."""
    u = rng.normal(size=7)
    return tuple(float(x) for x in u / np.linalg.norm(u))


def target_qpos(spec: RobotSpec, q0: np.ndarray = Q0) -> np.ndarray:
    return np.asarray(q0) + spec.magnitude * np.asarray(spec.direction)


class RobotPerturber(Perturber):
    def __init__(self, spec: RobotSpec, env):
        robot = env.raw_env.robots[0]
        self.qpos = target_qpos(spec, np.asarray(robot.robot_model.init_qpos))
        # A hard reset re-creates the robot from robot_configs (LIBERO-Plus swaps in a robot class whose
        # model has this init_qpos); a soft reset keeps the current robot object.
        env.raw_env.robot_configs[0]["initial_qpos"] = self.qpos
        robot.init_qpos = self.qpos

    def prepare_state(self, env, state: np.ndarray) -> np.ndarray:
        robot = env.raw_env.robots[0]
        state = state.copy()
        # flattened MuJoCo state = (time, qpos, qvel)
        nq = env.sim.model.nq
        qpos_idx = 1 + np.asarray(robot._ref_joint_pos_indexes)
        qvel_idx = 1 + nq + np.asarray(robot._ref_joint_vel_indexes)
        state[qpos_idx] = self.qpos
        state[qvel_idx] = 0.0
        return state
