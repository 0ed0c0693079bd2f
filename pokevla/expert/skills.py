"""Pick-and-place skills built from the motion primitives: transit, pick, place, and drag (a bowl
slid along the table by its rim).

Each skill is a generator of actions that returns True on success. Skills re-read the scene when
they start, so a plan adapts to where things actually are after the previous step.
"""

from __future__ import annotations

import numpy as np

from pokevla.expert import grasps
from pokevla.expert.motion import CLOSE, OPEN, Arm, Skill, move_to, set_gripper
from pokevla.expert.placement import PlaceTarget
from pokevla.expert.scene import Box, Scene

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


def way_out(box: Box, blockers: list[Box], toward: np.ndarray, gap: float = 0.01) -> np.ndarray | None:
    """Shortest horizontal shift that takes `box` `gap` clear of every blocker's footprint (of equally
    short ones, the one towards the point `toward`, xy): zeros when it is already clear, None
    beyond 20 cm."""

    def clear(shift: np.ndarray) -> bool:
        moved = Box(box.lo + [*shift, 0.0], box.hi + [*shift, 0.0])
        return all(moved.xy_gap(b) > gap for b in blockers)

    if clear(np.zeros(2)):
        return np.zeros(2)
    toward = toward - box.center[:2]
    directions = [grasps.unit(a)[:2] for a in np.linspace(0.0, 2 * np.pi, 16, endpoint=False)]
    for dist in np.arange(0.02, 0.2, 0.01):
        free = [s for s in (dist * d for d in directions) if clear(s)]
        if free:
            return min(free, key=lambda s: float(np.linalg.norm(toward - s)))
    return None


def overhang_escape(scene: Scene, held: str, z: float) -> np.ndarray | None:
    """Nearest grip-site xy from which `held` can rise to grip height `z` without hitting something
    that overhangs it (an open drawer above the object), or None when the way up is already clear."""
    box, eef = scene.box(held), scene.eef_pos
    top = z - (eef[2] - box.lo[2]) + box.size[2]  # height of the object's top at `z`
    above = [b for b in scene.obstacles(exclude=(held,)).values() if box.lo[2] + 0.005 < b.lo[2] < top]
    shift = way_out(box, above, scene.robot_base[:2])
    return None if shift is None or not shift.any() else eef[:2] + shift


def drag(arm: Arm, name: str, shift: np.ndarray) -> Skill:
    """Slides a bowl-like object along the table by `shift` (xy), closed fingers hooked inside its rim."""
    scene = arm.scene
    box = scene.box(name)
    d = np.array([*shift, 0.0]) / np.linalg.norm(shift)
    # the hand's underside just above the rim, its width across the way the object goes
    start = np.array([*box.center[:2], box.hi[2] + 0.005 - grasps.HAND_BOTTOM])
    arm.face_down(np.array([-d[1], d[0], 0.0]))
    arm.grip = CLOSE  # the fingers shut on the way there
    yield from transit(arm, start + np.array([0.0, 0.0, 0.05]))
    yield from move_to(arm, start, tol=0.008, speed=0.6, max_steps=40)
    # the fingers first cross the slack to the far wall, then carry the object
    slack = max(0.0, float(np.abs(box.size[:2] @ d[:2])) / 2 - 0.02)
    ok = yield from move_to(arm, start + d * slack + np.array([*shift, 0.0]), tol=0.01, speed=0.5, max_steps=60)
    yield from move_to(arm, scene.eef_pos + np.array([0.0, 0.0, 0.06]), tol=0.015, max_steps=20)
    return ok


def transit(arm: Arm, goal: np.ndarray, held: str | None = None, radius: float = 0.05) -> Skill:
    """Up, across and down to `goal`, high enough to pass over the clutter on the way."""
    scene = arm.scene
    start = scene.eef_pos
    z = max(transit_height(scene, start, goal, held, radius), goal[2])
    out = overhang_escape(scene, held, z) if held else None
    if out is not None:
        yield from move_to(arm, np.array([out[0], out[1], start[2]]), tol=0.015)
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
