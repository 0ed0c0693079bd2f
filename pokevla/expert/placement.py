"""Where a carried object must go for an (On a b) or (In a region) goal to hold.

LIBERO's checks (libero/envs/object_states, objects/site_object.py):
* On(a, object b): b's body is not above a's, they touch, and their body origins are < 3 cm apart
  horizontally -> put a's origin over b's origin, resting on b's top.
* On(a, region site): a's origin lies over the site's xy rectangle, 0-10 cm above its surface.
* In(a, region site): a's origin lies inside the site's box (LIBERO sizes, rotated by the site
  frame, 1 cm extra at the bottom) -> drop a into the box, resting on the highest surface in it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pokevla.expert.scene import Box, Scene

DROP = 0.012  # release the object this far above its resting surface: no push into it, a short fall


@dataclass(frozen=True)
class PlaceTarget:
    """Where the held object's body origin should end up, and the height of its bottom at release."""

    xy: np.ndarray
    bottom_z: float


def region_box(scene: Scene, site: str) -> Box:
    """The world box LIBERO's In check uses for a region site."""
    center = scene.site_pos(site)
    half = np.abs(scene.site_mat(site) @ scene.site_half_size(site))
    return Box(center - half, center + half)


def target_for(scene: Scene, obj: str, target: str, relation: str, shared: bool = False) -> PlaceTarget:
    """`shared`: another object goes to the same region later, so this one keeps to one side of it."""
    if not scene.is_site(target):
        xy = scene.pos(target)[:2]
        return PlaceTarget(xy, scene.box(target).hi[2] + DROP)
    parent = scene.parent_of_site(target)
    # a movable container (the basket) is one box: its rim would look like the floor, so skip it
    exclude = (obj, parent) if parent in scene.raw.objects_dict else (obj,)
    center = scene.site_pos(target)
    if relation == "in":
        box = region_box(scene, target)
        floor = max(box.lo[2], support_top(scene, center[:2], exclude, below=box.hi[2]))
    else:
        half = scene.site_half_size(target)
        box = Box(center - half, center + half)
        surface = center[2] + half[2]
        floor = max(surface, support_top(scene, center[:2], exclude, below=surface + 0.08))
        # the parts of the fixture that carries the surface (a rack's slats) hold the object, not block it
        exclude = (*exclude, parent)
    xy = free_spot(scene, obj, box, floor, exclude, shared)
    return PlaceTarget(xy, floor + DROP)


def free_spot(scene: Scene, obj: str, region: Box, floor: float, exclude: tuple[str, ...],
              shared: bool = False) -> np.ndarray:
    """The point of `region` (for the object's origin) nearest its centre where the object's footprint
    meets nothing standing above `floor`: a drawer's overhanging frame, an object already put there.

    `shared`: nearest the middle of the region's lower edge along the object's narrow side instead,
    which leaves the most room for the next object beside it."""
    pos, box = scene.pos(obj), scene.box(obj)
    lo_off, hi_off = box.lo[:2] - pos[:2], box.hi[:2] - pos[:2]
    blockers = [b for b in scene.obstacles(exclude=exclude).values() if b.hi[2] > floor + 0.004]
    margin = np.minimum(0.01, (region.hi[:2] - region.lo[:2]) / 4)
    goal = region.center[:2].copy()
    if shared:
        narrow = int(np.argmin(box.size[:2]))
        goal[narrow] = region.lo[narrow] + margin[narrow] - lo_off[narrow]
    xs = np.linspace(region.lo[0] + margin[0], region.hi[0] - margin[0], 7)
    ys = np.linspace(region.lo[1] + margin[1], region.hi[1] - margin[1], 7)
    best, best_key = region.center[:2], (np.inf, np.inf)
    for x in xs:
        for y in ys:
            p = np.array([x, y])
            foot = Box(np.array([*(p + lo_off), floor]), np.array([*(p + hi_off), floor + box.size[2]]))
            overlap = sum(max(0.0, -foot.xy_gap(b)) for b in blockers)
            key = (round(overlap, 3), float(np.linalg.norm(p - goal)))
            if key < best_key:
                best, best_key = p, key
    return best


def support_top(scene: Scene, xy: np.ndarray, exclude: tuple[str, ...], below: float) -> float:
    """Top of the highest obstacle part under `xy` whose top is lower than `below`."""
    tops = [b.hi[2] for b in scene.obstacles(exclude=exclude).values() if _contains_xy(b, xy) and b.hi[2] < below]
    return float(max(tops, default=0.0))


def _contains_xy(box: Box, xy: np.ndarray) -> bool:
    return bool(np.all(xy > box.lo[:2]) and np.all(xy < box.hi[:2]))
