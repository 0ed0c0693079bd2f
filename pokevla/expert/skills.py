"""Pick-and-place skills built from the motion primitives: transit, pick, place.

Each skill is a generator of actions that returns True on success. Skills re-read the scene when
they start, so a plan adapts to where things actually are after the previous step.
"""

from __future__ import annotations

import numpy as np

from pokevla.expert import grasps
from pokevla.expert.motion import CLOSE, OPEN, Arm, Skill, move_to, set_gripper
from pokevla.expert.placement import PlaceTarget
from pokevla.expert.scene import Scene

MAX_Z = 1.32  # highest comfortable grip-site height above the table (the arm's reach)
CLEAR = 0.03  # vertical margin kept above obstacles in transit


def transit_height(scene: Scene, start: np.ndarray, goal: np.ndarray, held: str | None, radius: float) -> float:
    """Grip-site height that carries the hand (and what it holds) over everything along the straight path."""
    exclude = (held,) if held else ()
    hang = scene.eef_pos[2] - scene.box(held).lo[2] if held else 0.0
    top = 0.0
    boxes = list(scene.obstacles(exclude=exclude).values())
    for t in np.linspace(0.0, 1.0, 12):
        p = start[:2] + t * (goal[:2] - start[:2])
        for box in boxes:
            if np.all(p > box.lo[:2] - radius) and np.all(p < box.hi[:2] + radius):
                top = max(top, box.hi[2])
    return float(min(MAX_Z, top + hang + CLEAR))


def transit(arm: Arm, goal: np.ndarray, held: str | None = None, radius: float = 0.05) -> Skill:
    """Up, across and down to `goal`, high enough to pass over the clutter on the way."""
    scene = arm.scene
    start = scene.eef_pos
    z = max(transit_height(scene, start, goal, held, radius), goal[2])
    if start[2] < z - 0.02:
        yield from move_to(arm, np.array([start[0], start[1], z]), tol=0.025)
    if np.linalg.norm(goal[:2] - scene.eef_pos[:2]) > 0.02:
        yield from move_to(arm, np.array([goal[0], goal[1], max(z, goal[2])]), tol=0.025)
    return (yield from move_to(arm, goal, tol=0.01))


def is_held(scene: Scene, name: str, rest_z: float) -> bool:
    """The object rose with the hand and still touches it (a bowl's thin wall leaves the fingers nearly shut)."""
    return scene.pos(name)[2] > rest_z + 0.02 and scene.in_contact(name, scene.robot_bodies)


def pick(arm: Arm, name: str, across: np.ndarray | None = None, attempts: int = 2) -> Skill:
    """Grasps `name` with the best-cleared grasp and lifts it; re-plans if the grasp slips.

    `across`: see `grasps.plan_grasp`."""
    scene = arm.scene
    for _ in range(attempts):
        grasp = grasps.plan_grasp(scene, name, across)
        rest_z = scene.pos(name)[2]
        arm.face_down(grasp.closing)
        if arm.grip != OPEN:
            yield from set_gripper(arm, OPEN)
        above = grasp.point + np.array([0.0, 0.0, 0.07])
        yield from transit(arm, above, held=None)
        yield from move_to(arm, grasp.point, tol=0.006, speed=0.6, max_steps=60)
        yield from set_gripper(arm, CLOSE)
        lift = scene.eef_pos + np.array([0.0, 0.0, 0.08])
        yield from move_to(arm, lift, tol=0.02, speed=0.5)  # gently: a jerk makes a rim grasp slip
        if is_held(scene, name, rest_z):
            return True
    return False


def place(arm: Arm, name: str, target: PlaceTarget) -> Skill:
    """Carries the held object over `target`, lowers it to the release height and lets go."""
    scene = arm.scene
    ref = scene.pos(name)
    offset = scene.eef_pos[:2] - ref[:2]
    hang = scene.eef_pos[2] - scene.box(name).lo[2]
    release = np.array([*(target.xy + offset), target.bottom_z + hang])
    above = release + np.array([0.0, 0.0, 0.05])
    radius = float(max(scene.box(name).size[:2]) / 2 + 0.02)
    yield from transit(arm, above, held=name, radius=radius)
    yield from move_to(arm, release, tol=0.008, speed=0.5, max_steps=60)
    yield from set_gripper(arm, OPEN)
    yield from move_to(arm, scene.eef_pos + np.array([0.0, 0.0, 0.06]), tol=0.02, max_steps=30)
    return True
