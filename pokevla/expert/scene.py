"""Privileged simulator state for the scripted expert: poses, extents, joints and region sites.

Everything is read straight from MuJoCo (`env.sim`) and LIBERO's task env (`env.raw_env`); the
expert never looks at images. Extents are world-axis boxes (AABBs) of an object's collision geoms,
which is what the arm can bump into; visual meshes are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from pokevla.sim.env import LiberoEnv

_BOX_CORNERS = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=np.float64)


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in world coordinates."""

    lo: np.ndarray
    hi: np.ndarray

    @property
    def center(self) -> np.ndarray:
        return (self.lo + self.hi) / 2

    @property
    def size(self) -> np.ndarray:
        return self.hi - self.lo

    def xy_gap(self, other: "Box") -> float:
        """Horizontal clearance between two boxes; negative when their footprints overlap."""
        return float(np.maximum(self.lo[:2] - other.hi[:2], other.lo[:2] - self.hi[:2]).max())


def corners_box(points: np.ndarray) -> Box:
    return Box(points.min(axis=0), points.max(axis=0))


class Scene:
    """Read-only view of one episode's state; values are live (re-read at every call).

    Build a new one after every `env.reset()`: a hard reset replaces the MuJoCo model and data.
    """

    def __init__(self, env: LiberoEnv):
        self.env = env
        self.raw = env.raw_env
        self.model = env.sim.model._model
        self.data = env.sim.data._data
        self._subtree_cache: dict[int, np.ndarray] = {}  # the body tree is fixed for this model

    # ------------------------------------------------------------------ robot
    @property
    def eef_pos(self) -> np.ndarray:
        return self.data.site_xpos[self._grip_site].copy()

    @property
    def eef_mat(self) -> np.ndarray:
        return self.data.site_xmat[self._grip_site].reshape(3, 3).copy()

    @property
    def finger_qpos(self) -> np.ndarray:
        return self.data.qpos[self._finger_qpos_adr].copy()

    @property
    def robot_base(self) -> np.ndarray:
        return self.data.xpos[self.model.body("robot0_base").id].copy()

    @property
    def finger_axis(self) -> np.ndarray:
        """Unit vector from the left to the right finger, in world coordinates (the closing axis)."""
        left, right = (self.data.xpos[self.model.body(n).id] for n in ("gripper0_leftfinger", "gripper0_rightfinger"))
        v = right - left
        return v / np.linalg.norm(v)

    @cached_property
    def _grip_site(self) -> int:
        return self.model.site("gripper0_grip_site").id

    @cached_property
    def _finger_qpos_adr(self) -> np.ndarray:
        joints = [self.model.joint(n) for n in ("gripper0_finger_joint1", "gripper0_finger_joint2")]
        return np.array([self.model.jnt_qposadr[j.id] for j in joints])

    @cached_property
    def robot_bodies(self) -> frozenset[int]:
        """Every body of the arm and gripper (for contact checks)."""
        names = [self.model.body(b).name for b in range(self.model.nbody)]
        return frozenset(b for b, n in enumerate(names) if n.startswith(("robot0_", "gripper0_")))

    # --------------------------------------------------------------- objects
    def body(self, name: str) -> int:
        """Body id of an object, fixture or any MuJoCo body name."""
        if name in self.raw.obj_body_id:
            return self.raw.obj_body_id[name]
        return self.model.body(name).id

    def pos(self, name: str) -> np.ndarray:
        return self.data.xpos[self.body(name)].copy()

    def mat(self, name: str) -> np.ndarray:
        return self.data.xmat[self.body(name)].reshape(3, 3).copy()

    def box(self, name: str) -> Box:
        """World AABB of the collision geoms of a body and everything attached below it."""
        return corners_box(self._corners(self._subtree_geoms(self.body(name))))

    def part_corners(self, body: int) -> list[np.ndarray]:
        """Corners (8, 3) of every collision geom at or below body id `body`: a handle, a knob's ridge."""
        return [self._corners(np.array([g])) for g in self._subtree_geoms(body)]

    def visual_boxes(self, body: int) -> dict[int, Box]:
        """World AABB of each visual-only geom (no collisions: what the cameras draw) of body id `body`,
        by geom id."""
        m = self.model
        geoms = np.flatnonzero((m.geom_bodyid == body) & (m.geom_contype == 0) & (m.geom_conaffinity == 0))
        return {int(g): corners_box(self._corners(np.array([g]))) for g in geoms}

    def local_half_extents(self, name: str) -> np.ndarray:
        """Half extents of the collision geoms in the body's own frame (x, y, z)."""
        b = self.body(name)
        local = (self._corners(self._subtree_geoms(b)) - self.data.xpos[b]) @ self.mat(name)
        return (local.max(axis=0) - local.min(axis=0)) / 2

    def local_center(self, name: str) -> np.ndarray:
        """Centre of the collision geoms' box in the body frame, expressed as a world point."""
        b = self.body(name)
        rot = self.mat(name)
        local = (self._corners(self._subtree_geoms(b)) - self.data.xpos[b]) @ rot
        return self.data.xpos[b] + rot @ ((local.max(axis=0) + local.min(axis=0)) / 2)

    @property
    def movable_objects(self) -> list[str]:
        return list(self.raw.objects_dict)

    @property
    def fixtures(self) -> list[str]:
        return list(self.raw.fixtures_dict)

    def category(self, name: str) -> str:
        obj = self.raw.objects_dict.get(name) or self.raw.fixtures_dict.get(name)
        return obj.category_name if obj is not None else name

    def obstacles(self, exclude: tuple[str, ...] = ()) -> dict[str, Box]:
        """AABBs of every object and fixture except `exclude` (fixtures as their separate geoms)."""
        boxes = {n: self.box(n) for n in self.movable_objects if n not in exclude}
        for f in self.fixtures:
            if f not in exclude:
                boxes.update(self._part_boxes(f))
        return boxes

    def in_contact(self, a: str, b_bodies: frozenset[int]) -> bool:
        """Whether any collision geom of object `a` touches a body in `b_bodies`."""
        mine = set(self._subtree_geoms(self.body(a)).tolist())
        for c in self.data.contact[: self.data.ncon]:
            g1, g2 = c.geom1, c.geom2
            if (g1 in mine and self.model.geom_bodyid[g2] in b_bodies) or (g2 in mine and self.model.geom_bodyid[g1] in b_bodies):
                return True
        return False

    # ----------------------------------------------------- sites and joints
    def site_pos(self, name: str) -> np.ndarray:
        return self.data.site_xpos[self.model.site(name).id].copy()

    def site_mat(self, name: str) -> np.ndarray:
        return self.data.site_xmat[self.model.site(name).id].reshape(3, 3).copy()

    def site_half_size(self, name: str) -> np.ndarray:
        """Half sizes LIBERO's region checks use (its Python-side size, not the rendered one)."""
        return np.asarray(self.raw.object_sites_dict[name].size, dtype=np.float64)

    def site_joints(self, name: str) -> list[str]:
        return list(self.raw.object_sites_dict[name].joints or ())  # table regions have None

    def parent_of_site(self, name: str) -> str:
        return self.raw.object_states_dict[name].parent_name

    def is_site(self, name: str) -> bool:
        return name in self.raw.object_sites_dict

    def object_joints(self, name: str) -> list[str]:
        """Articulation joints of a fixture (e.g. a microwave door, a stove knob)."""
        obj = self.raw.objects_dict.get(name) or self.raw.fixtures_dict[name]
        return list(obj.joints)

    def qpos(self, joint: str) -> float:
        return float(self.data.qpos[self.model.jnt_qposadr[self.model.joint(joint).id]])

    def joint_body(self, joint: str) -> int:
        """Id of the body the joint moves (a drawer, a knob, a door)."""
        return int(self.model.jnt_bodyid[self.model.joint(joint).id])

    def joint_axis(self, joint: str) -> np.ndarray:
        """World direction in which the joint's coordinate grows (slide) or its rotation axis (hinge)."""
        j = self.model.joint(joint).id
        return self.data.xmat[self.model.jnt_bodyid[j]].reshape(3, 3) @ self.model.jnt_axis[j]

    def joint_anchor(self, joint: str) -> np.ndarray:
        return self.data.xanchor[self.model.joint(joint).id].copy()

    # ---------------------------------------------------------------- helpers
    @cached_property
    def _collision_geoms(self) -> np.ndarray:
        m = self.model
        return np.flatnonzero((m.geom_contype != 0) | (m.geom_conaffinity != 0))

    def _subtree_geoms(self, body: int) -> np.ndarray:
        if body not in self._subtree_cache:  # obstacle queries ask for every object, many times per episode
            self._subtree_cache[body] = np.array(
                [g for g in self._collision_geoms if self._is_below(int(self.model.geom_bodyid[g]), body)], dtype=int)
        return self._subtree_cache[body]

    def _is_below(self, b: int, ancestor: int) -> bool:
        while b != 0:
            if b == ancestor:
                return True
            b = int(self.model.body_parentid[b])
        return ancestor == 0

    def _corners(self, geoms: np.ndarray) -> np.ndarray:
        m, d = self.model, self.data
        pts = []
        for g in geoms:
            center, half = m.geom_aabb[g, :3], m.geom_aabb[g, 3:]
            pts.append(d.geom_xpos[g] + (center + _BOX_CORNERS * half) @ d.geom_xmat[g].reshape(3, 3).T)
        return np.concatenate(pts)

    def _part_boxes(self, fixture: str) -> dict[str, Box]:
        """A fixture as one box per collision geom: a cabinet's walls, a drawer's floor, a stove's knob."""
        geoms = self._subtree_geoms(self.body(fixture))
        return {f"{fixture}/{g}": corners_box(self._corners(np.array([g]))) for g in geoms}
