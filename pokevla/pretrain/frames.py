"""The labels of one rendered frame, and the image geometry the knowledge families compute from them.

A `Frame` holds what the simulator knows about one picture: the instance map and metric depth of
the primary (agent) view, its camera, the scene's objects with their 3D boxes, the handles and knobs
of its articulated fixtures, the task's goal, and the scripted expert's plan and path.
Everything here is plain NumPy, so the families can be tested on synthetic frames.

Conventions (those of `pokevla.sim.env`):
* images are (H, W) arrays indexed [row, column]; a pixel position is (u, v) = (x, y), x along the
  columns, y down the rows, continuous: pixel (row i, column j) covers [j, j+1) x [i, i+1), its
  centre is (j + 0.5, i + 0.5). Normalised coordinates are (u / W, v / H), in [0, 1];
* the camera looks along +z of its frame (OpenCV axes: x right, y down); `intrinsics` K maps a
  camera-frame point to (u, v) by u = K[0,0] x/z + K[0,2], v = K[1,1] y/z + K[1,2]. K[0,0] is
  negative for LIBERO's rotated images, which mirror the upright view;
* `cam_to_world` (4, 4) takes camera-frame points to the world frame (metres, z up);
* depth is the camera-frame z (metres) of the surface seen at each pixel, as MuJoCo renders it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from pokevla.expert.planner import Step

MIN_VISIBLE_FRACTION = 0.0015  # of the image: smaller glimpses are neither named nor pointed at
MIN_VISIBLE_PIXELS = 16

# LIBERO category names that read badly once the underscores are gone
_LABELS = {
    "akita_black_bowl": "black bowl",
    "glazed_rim_porcelain_ramekin": "ramekin",
    "flat_stove": "stove",
    "new_salad_dressing": "salad dressing",
    "chefmate_8_frypan": "frying pan",
    "white_yellow_mug": "white and yellow mug",
    "red_coffee_mug": "red mug",
    "cookies": "cookie box",
    "wooden_two_layer_shelf": "wooden shelf",
    "bbq_sauce": "bbq sauce",
}


def readable_name(category: str) -> str:
    """A LIBERO category or instance name as words: "akita_black_bowl_2" -> "black bowl"."""
    base = re.sub(r"_\d+$", "", category)
    return _LABELS.get(base, base.replace("_", " "))


def plural(label: str) -> str:
    return label + ("es" if label.endswith(("s", "x", "ch", "sh")) else "s")


@dataclass(frozen=True)
class SceneObject:
    """One object or fixture of the scene, world frame (metres)."""

    name: str  # LIBERO instance name, e.g. "akita_black_bowl_1"
    label: str  # readable name, e.g. "black bowl"
    lo: np.ndarray  # (3,) corner of its collision geoms' axis-aligned box
    hi: np.ndarray  # (3,) opposite corner
    instance: int  # its id in `Frame.instances` (0: not drawn)
    movable: bool  # an object (False: a fixture such as a cabinet)
    held: bool = False  # touches the robot: not resting where it stands
    grasp: np.ndarray | None = None  # (3,) grip-site position the scripted expert would grasp it at

    @property
    def center(self) -> np.ndarray:
        return (self.lo + self.hi) / 2


@dataclass(frozen=True)
class Region:
    """A goal region: the box of a BDDL region site (its own axes), seen on one instance."""

    center: np.ndarray  # (3,) world
    rotation: np.ndarray  # (3, 3) site axes as columns, world
    half: np.ndarray  # (3,) half sizes along the site axes
    instance: int  # the instance the region belongs to (0: the table or floor)


@dataclass(frozen=True)
class Goal:
    """One BDDL goal predicate `(On|In obj target)`: where `obj` must end up."""

    obj: str  # instance name of the object to move
    relation: str  # "on" or "in"
    target: str  # instance name of the receptacle object, or of the region site
    region: Region | None = None  # None when the target is an object (its visible mask is the place)


@dataclass(frozen=True)
class Part:
    """The part of an articulated fixture the robot grips: a drawer's or a door's handle, a stove's knob."""

    words: str  # e.g. "the handle of the top drawer of the wooden cabinet"
    mask: np.ndarray  # (H, W) bool: its visible pixels (geom-level segmentation)


@dataclass
class Frame:
    """The labels of one rendered frame (primary view) and its image paths, relative to the dataset."""

    id: str  # e.g. "libero_object/task00/scene00003/f2"
    scene: str  # id of the scene (splits never share one)
    image: str  # relative path of the primary RGB image
    wrist_image: str | None  # relative path of the wrist RGB image of the same instant
    instances: np.ndarray  # (H, W) int32, 0 background (table, floor, walls), i: an object's `instance`
    depth: np.ndarray  # (H, W) float32 metres, camera-frame z
    intrinsics: np.ndarray  # (3, 3)
    cam_to_world: np.ndarray  # (4, 4)
    objects: list[SceneObject]
    instruction: str
    success: bool  # the environment's success check (the BDDL goal) holds in this frame
    goals: list[Goal] = field(default_factory=list)
    next_object: str | None = None  # instance name of the object the expert's plan moves next
    plan: tuple[Step, ...] = ()  # the scripted expert's plan, in the order it runs the steps
    pending: frozenset[Step] = frozenset()  # the plan's steps whose goal predicate does not hold in this frame
    step_words: dict[Step, str] = field(default_factory=dict)  # plan steps and wrong steps of this scene as
    # words ("open the top drawer of the wooden cabinet"); only steps whose names are unambiguous
    start: bool = False  # the rollout's first state: the robot has not acted yet
    gripper_future: np.ndarray | None = None  # (K, 3) world positions of the gripper now and at K-1 later
    # steps of the expert's rollout (None: the rollout ends too soon)
    parts: list[Part] = field(default_factory=list)  # handles and knobs of the articulated fixtures
    absent_labels: tuple[str, ...] = ()  # readable names of other scenes' assets, none of them in this one
    masks: dict[str, np.ndarray] = field(default_factory=dict)  # relative path -> mask to be written

    # --------------------------------------------------------------- objects
    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of the images."""
        return self.instances.shape

    @cached_property
    def _pixel_counts(self) -> np.ndarray:
        return np.bincount(self.instances.ravel(), minlength=max((o.instance for o in self.objects), default=0) + 1)

    @property
    def min_pixels(self) -> int:
        h, w = self.size
        return max(MIN_VISIBLE_PIXELS, int(MIN_VISIBLE_FRACTION * h * w))

    def pixels(self, obj: SceneObject) -> int:
        """How many pixels of `obj` are visible."""
        return int(self._pixel_counts[obj.instance]) if 0 < obj.instance < len(self._pixel_counts) else 0

    def visible(self, obj: SceneObject) -> bool:
        return self.pixels(obj) >= self.min_pixels

    def glimpsed(self, obj: SceneObject) -> bool:
        """Partly in view, too little to tell: such an object makes counts and lists uncertain."""
        return 0 < self.pixels(obj) < self.min_pixels

    def mask(self, obj: SceneObject) -> np.ndarray:
        """(H, W) bool: the pixels where `obj` is visible."""
        return self.instances == obj.instance

    def unique(self, obj: SceneObject) -> bool:
        """Its readable name names only it in the scene (hidden objects count: the name must not mislead)."""
        return sum(o.label == obj.label for o in self.objects) == 1

    def named(self) -> list[SceneObject]:
        """Visible objects that their readable name alone identifies."""
        return [o for o in self.objects if self.visible(o) and self.unique(o)]

    def by_name(self, name: str) -> SceneObject | None:
        return next((o for o in self.objects if o.name == name), None)

    # -------------------------------------------------------------- geometry
    @cached_property
    def world_to_cam(self) -> np.ndarray:
        return np.linalg.inv(self.cam_to_world)

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) world -> (N, 3) camera frame."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        return points @ self.world_to_cam[:3, :3].T + self.world_to_cam[:3, 3]

    def project(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) world -> (N, 2) continuous pixel positions (u, v) (points must lie in front of the camera)."""
        cam = self.to_camera(points)
        k = self.intrinsics
        return np.stack([k[0, 0] * cam[:, 0] / cam[:, 2] + k[0, 2], k[1, 1] * cam[:, 1] / cam[:, 2] + k[1, 2]], axis=1)

    def camera_distance(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) world -> (N,) Euclidean distance from the camera centre, metres."""
        return np.linalg.norm(np.asarray(points, dtype=np.float64).reshape(-1, 3) - self.cam_to_world[:3, 3], axis=1)

    @cached_property
    def rays(self) -> np.ndarray:
        """(H, W, 3) world direction through each pixel centre, scaled so that its camera-frame z is 1."""
        h, w = self.size
        k = self.intrinsics
        v, u = np.mgrid[0:h, 0:w] + 0.5
        cam = np.stack([(u - k[0, 2]) / k[0, 0], (v - k[1, 2]) / k[1, 1], np.ones_like(u)], axis=-1)
        return cam @ self.cam_to_world[:3, :3].T

    @cached_property
    def points(self) -> np.ndarray:
        """(H, W, 3) world position of the surface seen at each pixel (from the depth map)."""
        return self.cam_to_world[:3, 3] + self.rays * self.depth[..., None]

    @cached_property
    def upward(self) -> np.ndarray:
        """(H, W) bool: the surface seen faces up (normal within 45 degrees of world +z), from the
        gradients of the depth map's surface points (pixels on a depth edge may go either way)."""
        d_rows, d_cols = np.gradient(self.points, axis=(0, 1))
        normal = np.cross(d_cols, d_rows)
        return np.abs(normal[..., 2]) > np.cos(np.pi / 4) * np.linalg.norm(normal, axis=-1)

    def normalised(self, uv: np.ndarray) -> np.ndarray:
        """(N, 2) pixel positions (u, v) -> (N, 2) in [0, 1]."""
        h, w = self.size
        return np.clip(np.asarray(uv, dtype=np.float64) / [w, h], 0.0, 1.0)

    def pixel_of(self, uv: np.ndarray) -> tuple[int, int] | None:
        """(row, column) of the pixel holding position (u, v), or None outside the image."""
        h, w = self.size
        col, row = int(np.floor(uv[0])), int(np.floor(uv[1]))
        return (row, col) if 0 <= row < h and 0 <= col < w else None

    def add_mask(self, mask: np.ndarray) -> str:
        """Registers a target mask (H, W) bool for writing; returns its relative path (same mask, same path)."""
        data = np.where(mask, 255, 0).astype(np.uint8)  # 255: the Where2Place / RefSpatial mask convention
        digest = hashlib.sha1(data.tobytes()).hexdigest()[:12]
        path = f"{self.image.rsplit('/', 1)[0]}/mask_{digest}.png"
        self.masks[path] = data
        return path


def free_space_mask(frame: Frame, obj: SceneObject, near: float = 0.03, far: float = 0.15,
                    clearance: float = 0.04, tolerance: float = 0.025) -> np.ndarray:
    """(H, W) bool: pixels showing free support surface beside `obj`, where something could be put down.

    The support is the horizontal plane under `obj` (z = obj.lo[2]). A pixel qualifies when its ray
    meets that plane at a point Q whose camera-frame depth matches the rendered depth within
    `tolerance` (so Q is visible and nothing stands on it), Q lies `near`..`far` from `obj`'s
    footprint, at least `clearance` from every other object's footprint, and the pixel shows no object.
    """
    origin = frame.cam_to_world[:3, 3]
    rays = frame.rays
    with np.errstate(divide="ignore", invalid="ignore"):
        s = (obj.lo[2] - origin[2]) / rays[..., 2]  # camera-frame depth of Q (rays have unit camera z)
    q = origin + rays * s[..., None]
    ok = (s > 0) & (np.abs(frame.depth - s) < tolerance) & (frame.instances == 0)
    gap = footprint_distance(q[..., :2], obj.lo, obj.hi)
    ok &= (gap >= near) & (gap <= far)
    for other in frame.objects:
        if other.name != obj.name:
            ok &= footprint_distance(q[..., :2], other.lo, other.hi) >= clearance
    return ok


def footprint_distance(xy: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """(..., 2) points -> (...) horizontal distance to the box footprint [lo, hi] (0 inside)."""
    d = np.maximum(np.maximum(lo[:2] - xy, xy - hi[:2]), 0.0)
    return np.linalg.norm(d, axis=-1)


def region_mask(frame: Frame, region: Region, below: float = 0.01, above: float = 0.03) -> np.ndarray:
    """(H, W) bool: up-facing pixels of `region.instance` whose surface point lies inside the region's
    box (its height widened by `below` / `above`, since LIBERO's regions are thin boxes on a surface).
    Up-facing only: a thing is put down on a floor (a drawer's, a basket's), not on the walls or the
    front panel that also fall inside a container's box."""
    local = (frame.points - region.center) @ region.rotation  # world -> site axes
    inside = np.all(np.abs(local[..., :2]) <= region.half[:2], axis=-1)
    inside &= (local[..., 2] >= -region.half[2] - below) & (local[..., 2] <= region.half[2] + above)
    return inside & (frame.instances == region.instance) & frame.upward


def erode(mask: np.ndarray) -> np.ndarray:
    """Removes the pixels of `mask` (H, W bool) that touch its border (4-neighbourhood)."""
    padded = np.pad(mask, 1, constant_values=False)
    return (mask & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:])


def sample_points(mask: np.ndarray, rng: np.random.Generator, count: int) -> np.ndarray:
    """(count, 2) pixel-centre positions (u, v) drawn without repetition from `mask`, preferring its
    interior, so that a point rounded by a reader stays on the region."""
    inner = erode(mask)
    rows, cols = np.nonzero(inner if inner.sum() >= count else mask)
    pick = rng.choice(len(rows), size=min(count, len(rows)), replace=False)
    return np.stack([cols[pick] + 0.5, rows[pick] + 0.5], axis=1)


def mask_box(mask: np.ndarray) -> list[float]:
    """[x1, y1, x2, y2] in [0, 1]: the box of a mask's pixels (their outer edges)."""
    rows, cols = np.nonzero(mask)
    h, w = mask.shape
    return [cols.min() / w, rows.min() / h, (cols.max() + 1) / w, (rows.max() + 1) / h]
