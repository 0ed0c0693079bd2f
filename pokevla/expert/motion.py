"""Low-level motion: P-control of the end-effector towards waypoints, as generators of actions.

Each primitive is a generator that yields 7-dim OSC_POSE actions and returns True when it reached
its goal, False when it stalled (blocked by contact) or ran out of steps. The hand points down
(turning only about world z) except to pull a drawer handle, where it points horizontally into the
drawer. Positions are those of the grip site between the fingertips.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generator

import numpy as np
from scipy.spatial.transform import Rotation

from pokevla.expert.scene import Scene

Skill = Generator[np.ndarray, None, bool]

ROT_SCALE = 0.5  # action 1.0 = 0.5 rad rotation offset
OPEN, CLOSE = -1.0, 1.0
# grip-site frame of the reset pose: fingers pointing at the floor, closing along world y
HAND_DOWN = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])


def yaw_matrix(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def hand_forward(direction: np.ndarray, closing_up: bool) -> np.ndarray:
    """Grip-site frame pointing horizontally along `direction`, fingers closing vertically."""
    z = np.array([direction[0], direction[1], 0.0])
    z /= np.linalg.norm(z)
    x = np.array([0.0, 0.0, 1.0 if closing_up else -1.0])
    return np.stack([x, np.cross(z, x), z], axis=1)


def wrap_half_turn(angle: float) -> float:
    """Angle modulo pi into (-pi/2, pi/2]: a parallel gripper is symmetric under a half turn.

    A quarter turn either way is a tie that rounding would break at random, flipping the wrist
    between grasps; it goes to +pi/2, the side that keeps the arm's last joint mid-range."""
    wrapped = (angle + np.pi / 2) % np.pi - np.pi / 2
    return float(wrapped + np.pi if wrapped < -np.pi / 2 + 1e-6 else wrapped)


@dataclass
class Arm:
    """The end-effector controller: turns a pose goal into one action."""

    scene: Scene
    rot: np.ndarray = field(default_factory=lambda: HAND_DOWN.copy())  # orientation goal of the grip site
    grip: float = OPEN
    # True while the last action was a fine approach (speed < 1) or a gripper change: the moments
    # where demonstration noise (DART) would only teach hovering, so rollouts switch it off there
    precise: bool = False

    def __post_init__(self) -> None:
        # closing axis in the hand frame, measured once: it fixes which yaw aligns the fingers with a direction
        axis_local = self.scene.eef_mat.T @ self.scene.finger_axis
        world = HAND_DOWN @ axis_local
        self._finger_angle0 = float(np.arctan2(world[1], world[0]))

    def face_down(self, closing: np.ndarray) -> None:
        """Hand down, fingers on either side of the horizontal `closing` direction (the smaller turn of the two)."""
        want = float(np.arctan2(closing[1], closing[0]))
        self.rot = yaw_matrix(wrap_half_turn(want - self._finger_angle0)) @ HAND_DOWN

    def face_forward(self, direction: np.ndarray) -> None:
        """Hand level, pointing along `direction`. Of the two finger rolls, the one that pitches back
        down to a pose `face_down` would choose: a pure pitch, never a half-turn of the wrist."""
        reset_closing = np.array([np.cos(self._finger_angle0), np.sin(self._finger_angle0), 0.0])
        self.rot = hand_forward(direction, closing_up=float(direction @ reset_closing) >= 0)

    def tilt(self, direction: np.ndarray, angle: float) -> None:
        """Pitches the hand from pointing down by `angle` towards the horizontal `direction`."""
        axis = np.cross([0.0, 0.0, -1.0], direction)
        self.rot = Rotation.from_rotvec(axis / np.linalg.norm(axis) * angle).as_matrix() @ self.rot

    def action(self, target: np.ndarray, speed: float = 1.0, gain: float = 40.0, precise: bool | None = None) -> np.ndarray:
        """P-control towards `target`; the step is scaled as a vector so paths stay straight.

        The gain saturates beyond ~2.5 cm of error: the OSC lags its goal, so a smaller gain crawls
        over the last centimetres. `precise` defaults to a fine approach (speed < 1).
        """
        self.precise = speed < 1.0 if precise is None else precise
        move = (target - self.scene.eef_pos) * gain
        norm = np.linalg.norm(move)
        if norm > speed:
            move *= speed / norm
        rot = np.clip(_rotation_error(self) / ROT_SCALE * 1.5, -1.0, 1.0)
        return np.concatenate([move, rot, [self.grip]]).astype(np.float64)


def move_to(arm: Arm, target: np.ndarray, tol: float = 0.01, speed: float = 1.0, max_steps: int = 150) -> Skill:
    """Goes to `target` (and the arm's yaw goal); False if it stalls against something or times out."""
    target = np.asarray(target, dtype=np.float64)
    best, since_progress = np.inf, 0
    for _ in range(max_steps):
        dist = float(np.linalg.norm(target - arm.scene.eef_pos))
        if dist < tol and np.linalg.norm(_rotation_error(arm)) < 0.1:
            return True
        # stalled: blocked by contact or at the edge of the workspace
        best, since_progress = (dist, 0) if dist < best - 0.002 else (best, since_progress + 1)
        if since_progress >= 15:
            return False
        yield arm.action(target, speed)
    return False


def set_gripper(arm: Arm, grip: float, min_steps: int = 6, max_steps: int = 16) -> Skill:
    """Opens or closes the fingers in place, until they stop moving; nothing to do if they already are."""
    if arm.grip == grip:
        return True
    arm.grip = grip
    hold = arm.scene.eef_pos
    last = arm.scene.finger_qpos
    for i in range(max_steps):
        yield arm.action(hold, precise=True)
        q = arm.scene.finger_qpos
        if i + 1 >= min_steps and np.abs(q - last).max() < 2e-4:
            return True
        last = q
    return True


def _rotation_error(arm: Arm) -> np.ndarray:
    """Axis-angle (world frame) from the hand's orientation to its goal."""
    return Rotation.from_matrix(arm.rot @ arm.scene.eef_mat.T).as_rotvec()
