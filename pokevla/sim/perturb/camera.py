"""Camera dimension: moves the third-person (agentview) camera; the wrist camera is untouched.

Order of operations as in LIBERO-Plus: (1) elevation, a rotation of position and orientation about a
y-parallel axis through the pivot (0, 0, 0.8); (2) azimuth about world z through the pivot; (3) the
camera-pivot distance scaled; (4) yaw about world z and pitch about world y of the orientation only.
Quaternions are MuJoCo's (w, x, y, z).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from pokevla.sim.perturb.base import Perturber
from pokevla.sim.perturb.spec import CameraSpec

PIVOT = np.array([0.0, 0.0, 0.8])
CAMERA = "agentview"


def _axis_quat(axis: np.ndarray, deg: float) -> np.ndarray:
    half = np.deg2rad(deg) / 2
    return np.concatenate([[np.cos(half)], np.sin(half) * np.asarray(axis, dtype=float)])


def _qmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    w1, x1, y1, z1 = a
    w2, x2, y2, z2 = b
    return np.array([
        w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
        w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
        w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
        w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
    ])


def _rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    qv = np.concatenate([[0.0], v])
    return _qmul(_qmul(q, qv), q * np.array([1, -1, -1, -1]))[1:]


def camera_pose(spec: CameraSpec, pos: np.ndarray, quat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The perturbed (pos (3,), quat (4,) wxyz) of a camera at `pos`, `quat` (world frame)."""
    pos, quat = np.asarray(pos, dtype=float), np.asarray(quat, dtype=float)
    # Elevation: positive raises the camera; for a camera on +x that is a rotation of -v about +y.
    for q in (_axis_quat([0, 1, 0], -spec.elevation_deg), _axis_quat([0, 0, 1], spec.azimuth_deg)):
        pos = PIVOT + _rotate(q, pos - PIVOT)
        quat = _qmul(q, quat)
    pos = PIVOT + spec.distance_scale * (pos - PIVOT)
    quat = _qmul(_axis_quat([0, 0, 1], spec.yaw_deg), quat)
    quat = _qmul(_axis_quat([0, 1, 0], spec.pitch_deg), quat)
    return pos, quat / np.linalg.norm(quat)


class CameraPerturber(Perturber):
    """Writes the perturbed pose over the base pose read once from the freshly built model."""

    def __init__(self, spec: CameraSpec, env):
        model = env.sim.model
        cid = model.camera_name2id(CAMERA)
        self.spec = spec
        self.pos, self.quat = camera_pose(spec, model.cam_pos[cid].copy(), model.cam_quat[cid].copy())

    def after_reset(self, env) -> None:
        model = env.sim.model
        cid = model.camera_name2id(CAMERA)
        model.cam_pos[cid] = self.pos
        model.cam_quat[cid] = self.quat


@contextmanager
def moved(env, spec: CameraSpec | None) -> Iterator[None]:
    """Inside the block the third-person camera is where `spec` puts it (None: where it is); after it, back.
    For renders of restored states without a reset, e.g. knowledge frames from many viewpoints."""
    if spec is None:
        yield
        return
    model = env.sim.model
    cid = model.camera_name2id(CAMERA)
    before = model.cam_pos[cid].copy(), model.cam_quat[cid].copy()
    CameraPerturber(spec, env).after_reset(env)
    try:
        yield
    finally:
        model.cam_pos[cid], model.cam_quat[cid] = before
