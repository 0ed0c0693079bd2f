"""Where to put the fingers: grasp candidates per object shape, scored by clearance in clutter.

Two grasp families cover LIBERO's objects:
* body grasps (boxes, cans, bottles, pots, books): fingers on either side of the object's centre,
  closing along its short horizontal axis;
* rim grasps (bowls, mugs): one finger inside the wall and one outside, closing radially, because
  the object is wider than the 8 cm the gripper opens;
* handle grasps (moka pots): the fingers close across the handle, the part that sticks out furthest.
Every candidate is scored by the horizontal gap between the two open fingers (and the 20 cm wide
hand above them) and the neighbouring objects that reach up to them; the widest gap wins, so the
hand does not land on a neighbour (the failure of a fixed top-down grasp in clutter).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pokevla.expert.scene import Box, Scene

RIM_CATEGORIES = ("bowl", "mug", "plate")  # substrings of LIBERO category names grasped by the rim
HANDLE_CATEGORIES = ("moka_pot",)  # too wide for the hand: grasped by the handle
FINGER_REACH = 0.045  # centre of an open finger pad from the grip site, along the closing axis
FINGER_HALF = np.array([0.012, 0.014])  # finger pad half size (along closing, across)
HAND_HALF = np.array([0.105, 0.035])  # the hand above the fingers: half size (along closing, across)
HAND_BOTTOM = 0.024  # height of the hand's underside above the grip site
MAX_WIDTH = 0.075  # widest object the open gripper can enclose
TOP_GRIP = 0.026  # grip site below an object's top: above a bottle's shoulders, where open fingers land
FLOOR_GRIP = 0.012  # grip site above an object's bottom: the fingertips touch the table at 0.9 cm


@dataclass(frozen=True)
class Grasp:
    point: np.ndarray  # grip-site position at the grasp, world
    closing: np.ndarray  # horizontal unit vector along which the fingers close
    clearance: float = 0.0  # horizontal gap from the fingers or the hand to the nearest neighbour, metres


def is_rim_object(category: str) -> bool:
    return any(c in category for c in RIM_CATEGORIES)


def unit(angle: float) -> np.ndarray:
    return np.array([np.cos(angle), np.sin(angle), 0.0])


def finger_boxes(point: np.ndarray, closing: np.ndarray, reach: float = FINGER_REACH) -> list[Box]:
    """Footprints of the two open fingers as boxes (axis-aligned around the rotated pads)."""
    across = np.array([-closing[1], closing[0], 0.0])
    half = np.abs(closing[:2]) * FINGER_HALF[0] + np.abs(across[:2]) * FINGER_HALF[1]
    boxes = []
    for side in (-1.0, 1.0):
        c = point[:2] + side * reach * closing[:2]
        boxes.append(Box(np.array([*(c - half), point[2] - 0.01]), np.array([*(c + half), point[2] + 0.2])))
    return boxes


def clearance(point: np.ndarray, closing: np.ndarray, obstacles: dict[str, Box]) -> float:
    """Smallest horizontal gap between the open fingers and an obstacle tall enough to touch them."""
    gaps = [0.1]
    for finger in finger_boxes(point, closing):
        for box in obstacles.values():
            if box.hi[2] > finger.lo[2]:
                gaps.append(finger.xy_gap(box))
    return float(min(gaps))


def hand_clearance(point: np.ndarray, closing: np.ndarray, obstacles: dict[str, Box]) -> float:
    """Smallest horizontal gap between the hand (20 cm long along the closing axis) and an obstacle
    that reaches up to it: a rim grasp next to a cabinet puts the hand's end over the cabinet."""
    across = np.array([-closing[1], closing[0], 0.0])
    half = np.abs(closing[:2]) * HAND_HALF[0] + np.abs(across[:2]) * HAND_HALF[1]
    lo, hi = point[:2] - half, point[:2] + half
    hand = Box(np.array([*lo, point[2] + HAND_BOTTOM]), np.array([*hi, point[2] + 0.2]))
    return float(min([hand.xy_gap(b) for b in obstacles.values() if b.hi[2] > hand.lo[2]], default=0.1))


def body_grasps(center: np.ndarray, axes: np.ndarray, half: np.ndarray, grasp_z: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """(point, closing) candidates for a convex object.

    `axes` are the object's horizontal unit axes (2, 3) with half extents `half` (2,). Fingers close
    along the shorter axis; a roundish object may be gripped along either axis or the diagonals, and
    an elongated one at its centre or shifted along its length, which keeps the fingers off a
    neighbour standing close to one end.
    """
    short, long_ = (0, 1) if half[0] <= half[1] else (1, 0)
    point = np.array([center[0], center[1], grasp_z])
    if half[long_] < 1.2 * half[short]:
        # a box's diagonal is wider than its sides: keep the directions the open hand spans
        angle0 = np.arctan2(axes[short][1], axes[short][0])
        dirs = [unit(angle0 + k * np.pi / 4) for k in range(4)]
        return [(point, d) for d in dirs if 2 * (np.abs(axes @ d) @ half) < MAX_WIDTH]
    shift = min(0.015, max(0.0, half[long_] - 0.02))
    return [(point + s * axes[long_], axes[short]) for s in (0.0, -shift, shift)]


def rim_grasps(center: np.ndarray, radius: float, grasp_z: float, avoid: np.ndarray | None) -> list[tuple[np.ndarray, np.ndarray]]:
    """(point, closing) candidates on the wall of a bowl or mug, every 30 degrees.

    `avoid` is a horizontal direction (a mug's handle axis) kept at least 50 degrees away.
    """
    out = []
    for k in range(12):
        d = unit(k * np.pi / 6)
        if avoid is not None and abs(float(d @ avoid)) > np.cos(np.radians(50)):
            continue
        out.append((np.array([center[0], center[1], grasp_z]) + (radius - 0.012) * d, d))
    return out


def handle_grasp(scene: Scene, name: str, long_axis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(point, closing) across the handle: the geoms beyond 4.5 cm from the body origin on the side
    that reaches furthest along the object's long axis (a spout on the other side is shorter)."""
    pos = scene.pos(name)
    parts = scene.part_corners(scene.body(name))
    along = [(c - pos) @ long_axis for c in parts]
    side = 1.0 if max(a.max() for a in along) >= -min(a.min() for a in along) else -1.0
    handle = np.concatenate([c for c, a in zip(parts, along) if side * a.mean() > 0.045])
    box = Box(handle.min(axis=0), handle.max(axis=0))
    return box.center, np.array([-long_axis[1], long_axis[0], 0.0])


def grasp_height(box: Box) -> float:
    """Grip height: TOP_GRIP below the top, but at least FLOOR_GRIP above the bottom.

    Deeper targets are out of reach (measured on libero_object): under a flat box the fingertips
    stop 0.9 cm above the table, and on tall bottles and cartons the open fingers land on the
    shoulders 3.3-3.6 cm below the top. A target the hand reaches makes the fingers close as it
    arrives; an unreachable one stalls the hand for 15 still frames until a timeout closes them, a
    decision no single observation shows (`pokevla.data.closing`)."""
    return float(max(box.hi[2] - TOP_GRIP, box.lo[2] + FLOOR_GRIP))


def plan_grasp(scene: Scene, name: str, across: np.ndarray | None = None) -> Grasp:
    """The grasp on `name` with the most room around the fingers.

    `across`: a horizontal direction the fingers should preferably not close along, because the
    hand (20 cm wide along its closing axis) must later fit through a narrow opening across it,
    such as the slot between an open drawer and the one above.
    """
    box = scene.box(name)
    rot = scene.mat(name)
    half3 = scene.local_half_extents(name)
    axes = _horizontal_axes(rot)
    half = _horizontal_half(rot, half3)
    category = scene.category(name)
    if any(c in category for c in HANDLE_CATEGORIES):
        candidates = [handle_grasp(scene, name, axes[int(np.argmax(half))])]
    elif is_rim_object(category):
        center = scene.pos(name)
        handle = axes[int(np.argmax(half))] if "mug" in category and half.max() > 1.15 * half.min() else None
        # 2.5 cm below the rim, but at least 1 cm above the bottom of a flat plate
        candidates = rim_grasps(center, float(half.min()), max(box.hi[2] - 0.025, box.lo[2] + 0.01), handle)
    else:
        candidates = body_grasps(scene.local_center(name), axes, half, grasp_height(box))
    obstacles = scene.obstacles(exclude=(name,))
    c = box.center  # what the object stands on or in is not in the fingers' way
    obstacles = {k: b for k, b in obstacles.items() if not (b.lo[0] < c[0] < b.hi[0] and b.lo[1] < c[1] < b.hi[1] and b.hi[2] < box.hi[2] - 0.01)}
    if not candidates:
        raise ValueError(f"{name} ({category}) is wider than the open gripper on every side")
    # what stands beside the object, not what hangs over it (an open drawer's floor clears the hand)
    standing = {k: b for k, b in obstacles.items() if b.lo[2] < box.hi[2]}
    scored = [Grasp(p, d, min(clearance(p, d, obstacles), hand_clearance(p, d, standing))) for p, d in candidates]
    # enough room (1.5 cm) counts the same for all; among those, the one nearest the robot is the
    # easiest to reach (a far rim grasp can lie beyond the arm's workspace)
    base = scene.robot_base[:2]

    def rank(g: Grasp) -> tuple[float, float, float]:
        along = 0.0 if across is None else round(abs(float(g.closing @ across)), 1)
        return round(min(g.clearance, 0.015), 3), -along, -round(float(np.linalg.norm(g.point[:2] - base)), 2)

    return max(scored, key=rank)


def _horizontal_axes(rot: np.ndarray) -> np.ndarray:
    """The object's two local axes closest to horizontal, projected on the floor and normalised."""
    tilt = np.abs(rot[2, :])
    idx = np.argsort(tilt)[:2]
    axes = rot[:, idx].T.copy()
    axes[:, 2] = 0.0
    return axes / np.linalg.norm(axes, axis=1, keepdims=True)


def _horizontal_half(rot: np.ndarray, half3: np.ndarray) -> np.ndarray:
    idx = np.argsort(np.abs(rot[2, :]))[:2]
    return half3[idx]
