"""Layout dimension: distractor objects added to the scene, or objects of interest moved 3-13 cm.

Distractors are written into a copy of the task's BDDL (new objects, one small placement region each
on the table, or on the floor in floor scenes), as LIBERO-Plus and LIBERO-PRO do; the env is built
from that copy and the episode starts from a scene sampled with the spec's `scene_seed`. Shifts move
the movable objects of interest in the official init state. `plan_*` choose the parameters at manifest
build time and `check_layout` verifies them in the simulator (objects settle, nothing overlaps).
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

from pokevla.common.errors import SimulatorError
from pokevla.common.io import write_text_atomic
from pokevla.sim.suites import SETTLE_STEPS
from pokevla.sim.perturb.base import Perturber
from pokevla.sim.perturb.spec import LayoutSpec, reset_kwargs

# Small graspable grocery items whose assets are installed (LIBERO-Plus draws from 13 similar categories;
# `mayo` is registered by LIBERO but its mesh is missing from the asset wheels).
DISTRACTOR_CATEGORIES = (
    "alphabet_soup", "bbq_sauce", "butter", "chocolate_pudding", "cookies", "cream_cheese", "ketchup",
    "macaroni_and_cheese", "milk", "orange_juice", "popcorn", "salad_dressing", "tomato_sauce",
)
# Every movable object category of LIBERO-90 (books, bowls, mugs, bottles, groceries, ...): what a recomposed
# scene draws its extra objects from, so that which objects a scene holds does not follow from its look.
SCENE_OBJECT_CATEGORIES = (
    "akita_black_bowl", "alphabet_soup", "basket", "black_book", "butter", "chefmate_8_frypan", "chocolate_pudding",
    "cream_cheese", "ketchup", "milk", "moka_pot", "new_salad_dressing", "orange_juice", "plate", "porcelain_mug",
    "red_coffee_mug", "tomato_sauce", "white_bowl", "white_yellow_mug", "wine_bottle", "wooden_tray", "yellow_book",
)
SHIFT_CM_BY_LEVEL = {1: 3.0, 2: 5.5, 3: 8.0, 4: 10.5, 5: 13.0}  # LIBERO-Plus medians 2.8/5.4/7.5/10/13
WORKSPACE = ((-0.25, 0.25), (-0.3, 0.3))  # x, y in the support's region frame (metres)
OBJECT_CLEARANCE = 0.11  # between a distractor and another object's region centre (overlaps are re-checked in the sim)
FIXTURE_CLEARANCE = 0.24  # cabinets, stoves, racks are large
SCATTER_AREA = ((-0.4, 0.2), (-0.3, 0.3))  # x, y: the span of LIBERO's own table regions (libero_goal's stove at -0.41)
REGION_HALF = 0.01  # distractor region half-size, as LIBERO's own 2 cm regions
SUPPORT_BODIES = ("table", "floor")  # arena bodies objects rest on (contacts with them are not overlaps)
SETTLE_TOLERANCE = 0.01  # metres an object may still move after the settle steps
DRIFT_TOLERANCE = 0.02  # metres a moved/added object may slide while it drops onto its support


# ---------------------------------------------------------------- BDDL text
def _block(text: str, head: str) -> tuple[int, int]:
    """(start, end) of the balanced s-expression that starts with `head`, e.g. '(:objects'."""
    start = text.find(head)
    if start < 0:
        raise SimulatorError(f"BDDL has no {head} block")
    depth = 0
    for i in range(start, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return start, i
    raise SimulatorError(f"BDDL {head} block is not closed")


def parse_regions(text: str) -> dict[str, dict]:
    """region name -> {"target": fixture, "ranges": [(x0, y0, x1, y1), ...]}."""
    start, end = _block(text, "(:regions")
    regions = {}
    for m in re.finditer(r"\((\w+)\s*\(:target\s+(\w+)\)(?:\s*\(:ranges\s*\(\s*((?:\([^()]*\)\s*)*)\))?", text[start:end], re.S):
        ranges = [tuple(map(float, r.split())) for r in re.findall(r"\(([-\d.e\s]+)\)", m.group(3) or "")]
        regions[m.group(1)] = {"target": m.group(2), "ranges": ranges}
    return regions


def _names_in(text: str, head: str) -> list[tuple[str, str]]:
    """(name, category) pairs declared in the (:objects ...) or (:fixtures ...) block."""
    start, end = _block(text, head)
    pairs = []
    for line in text[start + len(head) : end].strip().splitlines():
        if " - " in line:
            names, category = line.split(" - ")
            pairs += [(n, category.strip()) for n in names.split()]
    return pairs


def support_of(text: str) -> str:
    """The fixture most regions are placed on: the table, or the floor in floor scenes."""
    targets = Counter(r["target"] for r in parse_regions(text).values() if r["ranges"])
    return targets.most_common(1)[0][0]


def distractor_name(category: str, index: int) -> str:
    return f"{category}_pokevla_{index}"


def is_distractor(name: str) -> bool:
    return re.fullmatch(r"\w+_pokevla_\d+", name) is not None


def objects_in(text: str) -> list[tuple[str, str]]:
    """(name, category) of each object the BDDL text declares (fixtures aside)."""
    return _names_in(text, "(:objects")


def things_in(text: str) -> list[tuple[str, str]]:
    """(name, category) of each object and fixture the BDDL text declares."""
    return objects_in(text) + _names_in(text, "(:fixtures")


def with_distractors(text: str, distractors: tuple[tuple[str, float, float], ...]) -> str:
    """The BDDL text with one object, a small region at its (x, y) and an (On object region) line per distractor."""
    h = REGION_HALF
    return _with_objects(text, [(category, (x - h, y - h, x + h, y + h)) for category, x, y in distractors])


def scattered(text: str, distractors: tuple[str, ...] = (), drop: tuple[str, ...] = ()) -> str:
    """The BDDL text with every region that starts an object or fixture on the table (floor) widened to
    SCATTER_AREA (its yaw range kept), plus one object of each `distractors` category placed on the same span,
    less the `drop` objects and fixtures (names from `droppable`).

    LIBERO's placement sampler then puts everything anywhere on the table, clear of each other, at
    every reset: where an object stands no longer names it. Regions a goal names keep their ranges.
    """
    for name in drop:
        text = _without(text, name)
    support, goal = support_of(text), _block_text(text, "(:goal")
    (x0, x1), (y0, y1) = SCATTER_AREA
    for region in {key for _, key in _support_regions(text) if not re.search(rf"\b{support}_{key}\b", goal)}:
        text = re.sub(rf"(\(\s*{region}\s*\(:target\s+{support}\s*\)\s*\(:ranges\s*\(\s*)(?:\([^()]*\)\s*)+",
                      lambda m: f"{m[1]}({x0} {y0} {x1} {y1})\n            ", text, count=1)
    return _with_objects(text, [(category, (x0, y0, x1, y1)) for category in distractors])


def droppable(text: str) -> list[str]:
    """The objects and fixtures a scene can lose without changing its task: each is named only where it is
    declared, where it is placed and as the target of its own regions, and none of those regions is used."""
    support = support_of(text)
    return [name for name, _ in things_in(text) if name != support and _mentions(text, name) == 2
            and not re.search(rf"(?<![\w-]){re.escape(name)}_\w", text)]


def _mentions(text: str, name: str) -> int:
    """How often `name` appears as a whole name, its own regions' `(:target name)` aside."""
    own_regions = len(re.findall(rf"\(:target\s+{re.escape(name)}\s*\)", text))
    return len(re.findall(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text)) - own_regions


def _without(text: str, name: str) -> str:
    """The BDDL text less `name`'s declaration, its placement line and its own regions; `name` must be `droppable`."""
    if name not in droppable(text):
        raise ValueError(f"{name} cannot be dropped from the scene: the task uses it or the scene lacks it")
    text = re.sub(rf"\n[ \t]*\(\s*[\w-]+\s*\(:target\s+{re.escape(name)}\s*\)\s*\)[ \t]*(?=\n)", "", text)
    lines = []
    for line in text.split("\n"):
        if re.fullmatch(rf"\s*\((?:On|In)\s+{re.escape(name)}\s+\S+\)\s*", line):
            continue
        if " - " in line and name in line.split(" - ")[0].split():
            names, category = line.split(" - ")
            kept = [n for n in names.split() if n != name]
            if not kept:
                continue
            line = f"{names[:len(names) - len(names.lstrip())]}{' '.join(kept)} - {category}"
        lines.append(line)
    text = "\n".join(lines)
    if re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text):
        raise ValueError(f"{name} is declared or placed in a form the BDDL rewrite does not handle")
    return text


def _block_text(text: str, head: str) -> str:
    start, end = _block(text, head)
    return text[start:end]


def _with_objects(text: str, objects: list[tuple[str, tuple[float, float, float, float]]]) -> str:
    """The BDDL text with one object of each category, its own region (x0, y0, x1, y1) on the table
    (floor) and an (On object region) line."""
    support = support_of(text)
    regions, names, inits = [], [], []
    for i, (category, (x0, y0, x1, y1)) in enumerate(objects):
        name, region = distractor_name(category, i), f"pokevla_distractor_region_{i}"
        regions.append(f"      ({region}\n          (:target {support})\n          (:ranges (\n"
                       f"              ({x0:.4f} {y0:.4f} {x1:.4f} {y1:.4f})\n            )\n          )\n      )\n")
        names.append(f"    {name} - {category}\n")
        inits.append(f"    (On {name} {support}_{region})\n")
    for head, lines in (("(:init", inits), ("(:objects", names), ("(:regions", regions)):
        _, end = _block(text, head)
        end = text.rfind("\n", 0, end) + 1  # insert before the line of the block's closing parenthesis
        text = text[:end] + "".join(lines) + text[end:]
    return text


def bddl_path(base_bddl: str, spec: LayoutSpec) -> str:
    """Writes the layout's BDDL (the task's with distractors, or a scene's own) into the temp folder,
    named by content hash, and returns its path."""
    text = spec.bddl_text or with_distractors(Path(base_bddl).read_text(), spec.distractors)
    folder = Path(tempfile.gettempdir()) / "pokevla-bddl"
    folder.mkdir(exist_ok=True)
    path = folder / f"{Path(base_bddl).stem}_{hashlib.sha1(text.encode()).hexdigest()[:12]}.bddl"
    if not path.exists():
        write_text_atomic(path, text)  # parallel workers may write the same file
    return str(path)


# ------------------------------------------------------------------ planning
def plan_distractors(text: str, count: int, rng: np.random.Generator) -> tuple[tuple[str, float, float], ...]:
    """`count` distractors of categories absent from the scene, at free spots of the workspace."""
    fixtures = {name for name, _ in _names_in(text, "(:fixtures")}
    occupied = []  # (x, y, clearance)
    for obj, (x0, y0, x1, y1) in _support_placements(text):
        half = max(x1 - x0, y1 - y0) / 2
        occupied.append(((x0 + x1) / 2, (y0 + y1) / 2, half + (FIXTURE_CLEARANCE if obj in fixtures else OBJECT_CLEARANCE)))
    categories = plan_categories(text, count, rng)
    chosen = []
    for category in categories:
        for _ in range(1000):
            x, y = rng.uniform(*WORKSPACE[0]), rng.uniform(*WORKSPACE[1])
            if all(np.hypot(x - ox, y - oy) > c for ox, oy, c in occupied):
                break
        else:
            raise SimulatorError(f"no free spot for {count} distractors in this scene")
        occupied.append((x, y, OBJECT_CLEARANCE))
        chosen.append((str(category), round(float(x), 4), round(float(y), 4)))
    return tuple(chosen)


def plan_categories(text: str, count: int, rng: np.random.Generator,
                    categories: tuple[str, ...] = DISTRACTOR_CATEGORIES) -> tuple[str, ...]:
    """`count` distinct `categories` that the scene does not hold already."""
    present = {category for _, category in _names_in(text, "(:objects")}
    pool = [c for c in categories if c not in present]
    return tuple(str(c) for c in rng.choice(pool, size=count, replace=False))


def plan_shifts(objects: list[str], level: int, rng: np.random.Generator) -> tuple[tuple[str, float, float], ...]:
    """Each object moves SHIFT_CM_BY_LEVEL[level] in a random horizontal direction."""
    r = SHIFT_CM_BY_LEVEL[level] / 100
    shifts = []
    for name in objects:
        a = rng.uniform(0, 2 * np.pi)
        shifts.append((name, round(float(r * np.cos(a)), 4), round(float(r * np.sin(a)), 4)))
    return tuple(shifts)


def _support_placements(text: str) -> list[tuple[str, tuple[float, ...]]]:
    """(object or fixture, its init region (x0, y0, x1, y1)) for everything placed on the table (floor)."""
    regions = parse_regions(text)
    return [(obj, regions[key]["ranges"][0]) for obj, key in _support_regions(text)]


def _support_regions(text: str) -> list[tuple[str, str]]:
    """(object or fixture, the name of its init region) for everything placed on the table (floor)."""
    regions, support = parse_regions(text), support_of(text)
    start, end = _block(text, "(:init")
    placed = []
    for obj, region in re.findall(r"\(On\s+(\w+)\s+(\w+)\)", text[start:end]):
        key = region.removeprefix(f"{support}_")
        if key in regions and regions[key]["target"] == support and regions[key]["ranges"]:
            placed.append((obj, key))
    return placed


def on_support(text: str) -> list[str]:
    """Objects whose initial placement is a region of the table (floor), not on or in another object."""
    return [obj for obj, _ in _support_placements(text)]


def shiftable_objects(env, text: str) -> list[str]:
    """Objects of interest that stand on the table (floor) and have a free joint.

    Like LIBERO-Plus, which jitters the init regions on the table: an object that starts on or in
    another object (a bowl on the cookie box, in a drawer) keeps the relation its instruction names.
    """
    raw, placed = env.raw_env, set(on_support(text))
    free = {n for n, o in raw.objects_dict.items() if o.joints and _is_free(env, o.joints[-1])}
    return [n for n in raw.obj_of_interest if n in placed and n in free]


def _is_free(env, joint: str) -> bool:
    import mujoco

    return env.sim.model.jnt_type[env.sim.model.joint_name2id(joint)] == mujoco.mjtJoint.mjJNT_FREE


# ------------------------------------------------------------- run time
def _free_joint_addr(env, name: str) -> int:
    obj = env.raw_env.objects_dict.get(name)
    if obj is None or not obj.joints:
        raise SimulatorError(f"layout shift names {name!r}, which is not a movable object of this task")
    start, _ = env.sim.model.get_joint_qpos_addr(obj.joints[-1])
    return start


class LayoutPerturber(Perturber):
    def __init__(self, spec: LayoutSpec, env):
        self.spec = spec

    def after_reset(self, env) -> None:
        if not self.spec.shifts:
            return
        for name, dx, dy in self.spec.shifts:
            addr = _free_joint_addr(env, name)
            env.sim.data.qpos[addr : addr + 2] += (dx, dy)
        env.sim.forward()


def _support_bodies(env) -> set[int]:
    """World, table and floor bodies (with their children): what objects rest on.

    The table is part of the arena, its body named like the regions' target (e.g. living_room_table).
    """
    model, raw = env.sim.model, env.raw_env
    targets = Counter(r["target"] for r in raw.parsed_problem["regions"].values() if r["ranges"])
    names = {*SUPPORT_BODIES, targets.most_common(1)[0][0]}
    roots = [b for b in range(model.nbody) if model.body_id2name(b) in names]
    return {0} | {b for b in range(model.nbody) for r in roots if _is_under(model, b, r)}


def _contacts(env, names: list[str]) -> list[tuple[str, str]]:
    """Penetrating contacts between the bodies of `names` and anything but the support surfaces."""
    model, data = env.sim.model, env.sim.data
    raw = env.raw_env
    bodies = {}
    for name in names:
        root = model.body_name2id(raw.objects_dict[name].root_body)
        bodies.update({b: name for b in range(model.nbody) if _is_under(model, b, root)})
    support = _support_bodies(env)
    hits = []
    for i in range(data.ncon):
        c = data.contact[i]
        if c.dist > -0.002:  # resting contact, not overlap
            continue
        b1, b2 = model.geom_bodyid[c.geom1], model.geom_bodyid[c.geom2]
        for mine, other in ((b1, b2), (b2, b1)):
            if mine in bodies and other not in bodies and other not in support:
                hits.append((bodies[mine], model.body_id2name(other)))
    return hits


def _is_under(model, body: int, root: int) -> bool:
    while body > 0:
        if body == root:
            return True
        body = model.body_parentid[body]
    return False


def check_layout(env, spec: LayoutSpec, trial: int = 0, extra_steps: int = 20) -> str | None:
    """Resets `env` (built with `spec`) and returns why the layout is invalid, or None if it is valid.

    LIBERO's scenes start with objects just above their support and the settle steps drop them. Valid:
    the moved or added objects overlap nothing but the table/floor when placed, land within
    DRIFT_TOLERANCE of where they were put, and nothing moves more than SETTLE_TOLERANCE afterwards.
    """
    env.reset(**reset_kwargs(spec, trial), settle_steps=0)
    if spec.kind == "distractors":
        moved = [distractor_name(c, i) for i, (c, _, _) in enumerate(spec.distractors)]
    else:
        moved = [name for name, _, _ in spec.shifts]
    hits = _contacts(env, moved)
    if hits:
        return f"{hits[0][0]} overlaps {hits[0][1]}"
    raw = env.raw_env
    names = list(raw.objects_dict)
    ids = np.array([env.sim.model.body_name2id(o.root_body) for o in raw.objects_dict.values()])
    mine = np.array([names.index(n) for n in moved])
    placed = env.sim.data.body_xpos[ids].copy()
    _idle(env, SETTLE_STEPS)
    settled = env.sim.data.body_xpos[ids].copy()
    drift = np.linalg.norm(settled[mine, :2] - placed[mine, :2], axis=1)
    if drift.max() > DRIFT_TOLERANCE:
        worst = int(np.argmax(drift))
        return f"{moved[worst]} slid {100 * drift[worst]:.1f} cm while landing"
    _idle(env, extra_steps)
    motion = np.linalg.norm(env.sim.data.body_xpos[ids] - settled, axis=1)
    worst = int(np.argmax(motion))
    if motion[worst] > SETTLE_TOLERANCE:
        return f"{names[worst]} moved {100 * motion[worst]:.1f} cm after settling"
    return None


def _idle(env, steps: int) -> None:
    for _ in range(steps):
        env.step(np.array([0, 0, 0, 0, 0, 0, -1.0]))
