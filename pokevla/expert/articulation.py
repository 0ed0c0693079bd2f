"""Skills for articulated fixtures: drawers, doors and stove knobs.

The geometry comes from the fixture's own collision geoms and joint: a drawer's handle is the
part that sticks out furthest along the drawer's opening direction; a knob's grip ridge is the part
that stands above its base disc. Joint goals are LIBERO's thresholds (objects/articulated_objects.py):
a drawer is open below -0.14 m and closed above 0.0 m; a stove is on from 0.5 rad and off below
0.0 rad; a microwave door is closed above -0.005 rad.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from scipy.spatial.transform import Rotation

from pokevla.expert.grasps import is_rim_object
from pokevla.expert.motion import CLOSE, OPEN, Arm, Skill, move_to, set_gripper
from pokevla.expert.scene import Box, Scene, corners_box
from pokevla.expert.skills import drag, transit, way_out

DRAWER_OPEN_Q = -0.155  # slide joint goal when opening (LIBERO: open below -0.14, limit -0.16)
DRAWER_CLOSED_Q = 0.002  # closed above 0.0 (limit 0.01)
KNOB_ON_Q = 0.7  # rad (LIBERO: on from 0.5)
KNOB_OFF_Q = -0.002  # off below 0.0 (limit -0.005)
MICROWAVE_CLOSED_Q = -0.004  # rad (LIBERO: closed above -0.005)
PUSH_TILT = np.radians(45)  # pitch of the hand closing a drawer
KNOB_TURN_STEP = 0.06  # rad the wrist's goal turns per step, about what the arm follows


def drive(arm: Arm, direction: np.ndarray | Callable[[], np.ndarray], done: Callable[[], bool], speed: float = 0.6, max_steps: int = 80) -> Skill:
    """Moves the hand steadily along `direction` (fixed, or re-evaluated every step to follow an arc)
    until `done()`; False when it times out."""
    goal = arm.scene.eef_pos
    for _ in range(max_steps):
        if done():
            return True
        d = direction() if callable(direction) else direction
        goal = goal + d / np.linalg.norm(d) * 0.009 * speed  # walk the goal at about the speed the arm follows
        yield arm.action(goal, speed=speed)
    return done()


def turning_with(scene: Scene, joint: str, direction: np.ndarray) -> Callable[[], np.ndarray]:
    """`direction` rotated by as much as the hinge `joint` has turned since now: pushing a knob or a
    door keeps pushing square to it as it swings."""
    axis, q0 = scene.joint_axis(joint), scene.qpos(joint)
    return lambda: Rotation.from_rotvec(axis * (scene.qpos(joint) - q0)).apply(direction)


# ----------------------------------------------------------------------------- drawers
def _drawer(scene: Scene, name: str) -> tuple[str, np.ndarray, Box]:
    """(joint, opening direction, handle bar box) of a drawer region: the bar sticks out furthest."""
    joint = scene.site_joints(name)[0]
    pull = -scene.joint_axis(joint)  # the joint coordinate decreases as the drawer opens
    corners = scene.part_corners(scene.joint_body(joint))
    bar = corners[int(np.argmax([(c @ pull).max() for c in corners]))]
    return joint, pull, corners_box(bar)


def slide_drawer(arm: Arm, name: str, opening: bool, contents: tuple[str, ...] = ()) -> Skill:
    """Opens a drawer by pinching its handle bar with the hand level, or closes it by pushing the bar.

    From above, the fingers cannot get behind a handle (the gap to the drawer front is narrower
    than a finger, and the drawer above overhangs it), so the hand points into the drawer and its
    fingers close on the bar from above and below. `contents` (objects to be put into the drawer)
    are first moved out from under where the opened drawer will be.
    """
    scene = arm.scene
    joint, pull, bar = _drawer(scene, name)
    center = bar.center
    if opening:
        yield from _clear_drawer_path(arm, joint, pull, contents)
        arm.face_forward(-pull)
        arm.grip = OPEN  # the fingers open on the way there
        yield from transit(arm, center + pull * 0.08)
        yield from move_to(arm, center + pull * 0.004, tol=0.006, speed=0.5, max_steps=60)
        yield from set_gripper(arm, CLOSE)
        ok = yield from drive(arm, pull, lambda: scene.qpos(joint) < DRAWER_OPEN_Q)
        yield from set_gripper(arm, OPEN, max_steps=8)  # loose enough to back off; they open fully on the way
        yield from move_to(arm, scene.eef_pos + pull * 0.06 + np.array([0.0, 0.0, 0.03]), tol=0.015, max_steps=30)
        # clear of the drawer: the hand turns back down on its way up to the next goal (the next
        # skill's transit starts by rising)
        arm.face_down(pull)
        return ok
    else:
        # the hand's width along the drawer front, or its palm catches the handle of the drawer above
        arm.face_down(np.array([-pull[1], pull[0], 0.0]))
        # fingers slanted into the drawer keep the wrist back: pushing a low drawer straight down
        # from above, the forearm comes down on the cabinet's top edge before the drawer is shut
        arm.tilt(-pull, PUSH_TILT)
        yield from set_gripper(arm, CLOSE)
        start = center + pull * 0.05
        yield from transit(arm, start + np.array([0.0, 0.0, 0.04]))
        yield from move_to(arm, start, tol=0.008, speed=0.6, max_steps=60)
        ok = yield from drive(arm, -pull, lambda: scene.qpos(joint) > DRAWER_CLOSED_Q, max_steps=100)
        yield from move_to(arm, scene.eef_pos + pull * 0.04, tol=0.015, max_steps=20)
    yield from move_to(arm, scene.eef_pos + np.array([0.0, 0.0, 0.06]), tol=0.015, max_steps=60)
    return ok


def _clear_drawer_path(arm: Arm, joint: str, pull: np.ndarray, contents: tuple[str, ...]) -> Skill:
    """Drags bowls of `contents` out from under where the opened drawer will hang: past its floor,
    the hand could no longer reach down to them."""
    scene = arm.scene
    drawer = corners_box(np.concatenate(scene.part_corners(scene.joint_body(joint))))
    travel = pull * max(0.0, scene.qpos(joint) - DRAWER_OPEN_Q)
    opened = Box(drawer.lo + travel, drawer.hi + travel)
    for name in contents:
        box = scene.box(name)
        if is_rim_object(scene.category(name)) and box.hi[2] < opened.lo[2] and box.xy_gap(opened) < 0:
            # room for the hand, too: a rim grasp's hand reaches a centimetre past the bowl
            shift = way_out(box, [opened], scene.robot_base[:2], gap=0.035)
            if shift is not None:
                yield from drag(arm, name, shift)


# ------------------------------------------------------------------------------- knobs
def turn_knob(arm: Arm, name: str, on: bool) -> Skill:
    """Turns a stove knob by pinching its ridge over the hinge and turning the wrist.

    Pushing one end of the ridge sideways stalls: as the knob turns, the push becomes radial and the
    fingertip wedges against the ridge. A pinch turns the knob with the hand, whatever its angle.
    """
    scene = arm.scene
    joint = _hinge(scene, name)
    axis, anchor = scene.joint_axis(joint), scene.joint_anchor(joint)
    ridge = _ridge(scene, joint)
    # LIBERO's stoves stand square to the table axes, so the ridge runs along world x or y
    across = np.array([0.0, 1.0, 0.0]) if ridge.size[0] >= ridge.size[1] else np.array([1.0, 0.0, 0.0])
    grip = np.array([anchor[0], anchor[1], ridge.hi[2] - 0.015])
    arm.face_down(across)
    yield from set_gripper(arm, OPEN)
    yield from transit(arm, grip + np.array([0.0, 0.0, 0.05]))
    yield from move_to(arm, grip, tol=0.006, speed=0.5, max_steps=60)
    yield from set_gripper(arm, CLOSE)
    target_met = (lambda: scene.qpos(joint) > KNOB_ON_Q) if on else (lambda: scene.qpos(joint) < KNOB_OFF_Q)
    turn = Rotation.from_rotvec(axis * (KNOB_TURN_STEP if on else -KNOB_TURN_STEP)).as_matrix()
    for _ in range(40):  # about 12 steps of turning; the knob lags the hand
        if target_met():
            break
        arm.rot = turn @ arm.rot
        yield arm.action(grip)
    ok = target_met()
    yield from set_gripper(arm, OPEN)
    yield from move_to(arm, scene.eef_pos + np.array([0.0, 0.0, 0.06]), tol=0.015, max_steps=30)
    return ok


def _hinge(scene: Scene, name: str) -> str:
    joints = scene.object_joints(name)
    if len(joints) != 1:
        raise ValueError(f"{name} has joints {joints}; the expert turns fixtures with exactly one hinge")
    return joints[0]


def _ridge(scene: Scene, joint: str) -> Box:
    """The part of a knob that stands clear of its base disc (what the fingers push)."""
    corners = scene.part_corners(scene.joint_body(joint))
    base_top = min(c[:, 2].max() for c in corners)
    tall = [c for c in corners if c[:, 2].max() > base_top + 0.015]
    return corners_box(np.concatenate(tall))


# ------------------------------------------------------------------------------- doors
def swing_door(arm: Arm, name: str, opening: bool) -> Skill:
    """Closes a hinged door (microwave) by pushing its free edge around the hinge."""
    if opening:
        raise ValueError(f"opening the door of {name} is not a skill of the expert")
    scene = arm.scene
    joint = _hinge(scene, name)
    axis, anchor = scene.joint_axis(joint), scene.joint_anchor(joint)
    door = corners_box(np.concatenate(scene.part_corners(scene.joint_body(joint))))
    # the door point farthest from the hinge line, pushed along the closing tangent
    corners = np.array([[x, y] for x in (door.lo[0], door.hi[0]) for y in (door.lo[1], door.hi[1])])
    far = corners[np.argmax(np.linalg.norm(corners - anchor[:2], axis=1))]
    lever = np.array([*(far - anchor[:2]), 0.0]) * 0.75
    tangent = np.cross(axis, lever)  # LIBERO's microwave closes as its (negative) angle grows to 0
    tangent /= np.linalg.norm(tangent)
    point = anchor + lever
    point[2] = door.center[2]
    start = point - tangent * 0.05
    arm.face_down(tangent)
    yield from set_gripper(arm, CLOSE)
    yield from transit(arm, start + np.array([0.0, 0.0, 0.05]))
    yield from move_to(arm, start, tol=0.01, speed=0.6, max_steps=60)
    ok = yield from drive(arm, turning_with(scene, joint, tangent), lambda: scene.qpos(joint) > MICROWAVE_CLOSED_Q, max_steps=100)
    yield from move_to(arm, scene.eef_pos + np.array([0.0, 0.0, 0.05]), tol=0.015, max_steps=20)
    return ok


def slide_or_swing(arm: Arm, name: str, opening: bool, contents: tuple[str, ...] = ()) -> Skill:
    """Open/Close of a drawer region (slide joint) or of a fixture with a hinged door.

    `contents`: the objects that go into the drawer next."""
    if arm.scene.is_site(name) and arm.scene.site_joints(name):
        return slide_drawer(arm, name, opening, contents)
    return swing_door(arm, name, opening)
