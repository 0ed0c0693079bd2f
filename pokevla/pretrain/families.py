"""World-knowledge question families: each turns one frame's labels into LLaVA records.

A family is a function `(Frame, rng) -> list[record]` (records as `pokevla.pretrain.records` defines
them), registered in `FAMILIES` with its kind (the four groups of the PokeVLM mixture) and its label
source in words (written into a dataset's meta.json). Families only read the frame: the labels are
exact simulator quantities (instance and geom masks, depth, poses, the BDDL goal, the expert's plan
and path), and a question is skipped whenever its answer would be uncertain (too few visible pixels,
near-ties, names that fit two objects).

Spatial words refer to the image as shown: "left" is towards x = 0, "in front of" is nearer to the
camera (smaller camera-frame z). Object centres are the centres of their collision boxes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from itertools import combinations
from typing import Callable

import numpy as np

from pokevla.pretrain.frames import (Frame, SceneObject, free_space_mask, mask_box, plural, region_mask,
                                     sample_points)
from pokevla.pretrain.records import format_box, format_points, make_record

KINDS = ("general_vqa", "spatial_grounding", "affordance", "embodied_reasoning")
POINTS = " Answer with a list of points [(x, y), ...], x and y normalised to [0, 1]."
YES_NO = " Answer yes or no."
LEFT_RIGHT_MARGIN = 0.08  # of the image width between two projected centres: closer is a near-tie
DEPTH_MARGIN = 0.06  # metres of camera-frame z between two centres for "in front of" / "behind"
DISTANCE_MARGIN = 0.05  # metres between two distances for "closer" / "nearest" / "closest to"
GRASP_RADIUS = 0.02  # metres around the expert's grasp point that count as the grasp region
NEGATIVE_SUCCESS_SHARE = 0.25  # most frames of a rollout precede success: keep 1 in 4 of them
MAX_PER_FRAME = 3  # questions of one family on one frame (objects or pairs drawn at random)
POINT_OBJECT_PHRASINGS = ("Point to the {}.", "Where is the {}?", "Locate the {} in the image.")

Make = Callable[[Frame, np.random.Generator], list[dict]]


@dataclass(frozen=True)
class Family:
    name: str
    kind: str  # one of KINDS
    source: str  # where the labels come from, in words
    make: Make


FAMILIES: dict[str, Family] = {}


def family(name: str, kind: str, source: str) -> Callable[[Make], Make]:
    def register(make: Make) -> Make:
        FAMILIES[name] = Family(name, kind, source, make)
        return make

    return register


def frame_records(frame: Frame, rng: np.random.Generator, names: tuple[str, ...] | None = None) -> list[dict]:
    """The records of every family (or of `names`) on one frame."""
    out: list[dict] = []
    for fam in FAMILIES.values():
        if names is None or fam.name in names:
            out += fam.make(frame, rng)
    return out


def _record(frame: Frame, fam: str, k: int, question: str, answer: str, answer_type: str, target,
            two_view: bool = False) -> dict:
    image = [frame.image, frame.wrist_image] if two_view else frame.image
    return make_record(f"{frame.id}/{fam}/{k}", image, question, answer, family=fam, answer_type=answer_type,
                       target=target, scene=frame.scene)


def _some(rng: np.random.Generator, items: list, count: int = MAX_PER_FRAME) -> list:
    """Up to `count` of `items`, drawn without repetition, in random order."""
    if not items:
        return []
    pick = rng.choice(len(items), size=min(count, len(items)), replace=False)
    return [items[i] for i in pick]


def _some_points(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """1-3 pixel points (x, y) sampled inside `mask`."""
    return sample_points(mask, rng, int(rng.integers(1, 4)))


def _point_record(frame: Frame, fam: str, k: int, question: str, mask: np.ndarray, points: np.ndarray) -> dict:
    """A pointing record: `points` (inside `mask`) answer `question`; the mask is its target."""
    return _record(frame, fam, k, question + POINTS, format_points(frame.normalised(points)), "point", frame.add_mask(mask))


def _u(frame: Frame, obj: SceneObject) -> float:
    """Projected centre's x position as a fraction of the image width."""
    return float(frame.project(obj.center)[0, 0] / frame.size[1])


def _depth(frame: Frame, obj: SceneObject) -> float:
    return float(frame.to_camera(obj.center)[0, 2])


def _distance(frame: Frame, obj: SceneObject) -> float:
    return float(frame.camera_distance(obj.center)[0])


def _choice(rng: np.random.Generator, right: str, wrong: list[str], article: str = "the ") -> tuple[str, str, str]:
    """(options text "(A) the x (B) the y", answer "(B) the y", letter "B") with the options shuffled;
    `article` is written before each option."""
    options = [right, *wrong]
    order = rng.permutation(len(options))
    letters = "ABCD"
    shown = [options[i] for i in order]
    letter = letters[shown.index(right)]
    text = " ".join(f"({letters[i]}) {article}{o}" for i, o in enumerate(shown))
    return text, f"({letter}) {article}{right}", letter


# ------------------------------------------------------------------------------- general VQA
@family("inventory", "general_vqa", "instance segmentation: every object and fixture with enough visible pixels")
def inventory(frame: Frame, rng: np.random.Generator) -> list[dict]:
    if any(frame.glimpsed(o) for o in frame.objects):  # a sliver in view: whether to list it is unclear
        return []
    counts = Counter(o.label for o in frame.objects if frame.visible(o))
    if not counts:
        return []
    answer = ", ".join(label if n == 1 else f"{n} {plural(label)}" for label, n in sorted(counts.items()))
    question = str(rng.choice(["What objects are in the image? List them.", "List the objects you can see.",
                               "Which objects are in the scene? Name each kind with its count."]))
    return [_record(frame, "inventory", 0, question, answer, "text", answer)]


@family("count", "general_vqa", "instance segmentation: visible instances per category; 0 for assets of other scenes")
def count(frame: Frame, rng: np.random.Generator) -> list[dict]:
    labels = sorted({o.label for o in frame.objects if frame.visible(o)})
    certain = [lab for lab in labels if not any(o.label == lab and frame.glimpsed(o) for o in frame.objects)]
    asked = [(lab, sum(o.label == lab and frame.visible(o) for o in frame.objects)) for lab in _some(rng, certain, 2)]
    asked += [(lab, 0) for lab in _some(rng, list(frame.absent_labels), 1)]
    return [_record(frame, "count", k, f"How many {plural(lab)} are there in the image? Answer with a number.",
                    str(n), "count", n) for k, (lab, n) in enumerate(asked)]


@family("presence", "general_vqa", "instance segmentation (yes: visible objects); asset names of other scenes "
                                   "absent from this one (no)")
def presence(frame: Frame, rng: np.random.Generator) -> list[dict]:
    present = _some(rng, sorted({o.label for o in frame.objects if frame.visible(o)}), 2)
    absent = _some(rng, list(frame.absent_labels), len(present))
    asked = [(lab, "yes") for lab in present] + [(lab, "no") for lab in absent]
    return [_record(frame, "presence", k, f"Is there a {lab} in the image?" + YES_NO, a, "yesno", a)
            for k, (lab, a) in enumerate(asked)]


# ------------------------------------------------------------------------- spatial grounding
@family("point_object", "spatial_grounding", "instance segmentation: points sampled inside the object's visible mask")
def point_object(frame: Frame, rng: np.random.Generator) -> list[dict]:
    out = []
    for k, obj in enumerate(_some(rng, frame.named())):
        mask = frame.mask(obj)
        points = _some_points(mask, rng)
        question = str(rng.choice(POINT_OBJECT_PHRASINGS)).format(obj.label)
        out.append(_point_record(frame, "point_object", k, question, mask, points))
    return out


@family("box_object", "spatial_grounding", "instance segmentation: the box of the object's visible mask")
def box_object(frame: Frame, rng: np.random.Generator) -> list[dict]:
    out = []
    for k, obj in enumerate(_some(rng, frame.named())):
        box = mask_box(frame.mask(obj))
        question = (f"Give the bounding box of the {obj.label} as [(x1, y1, x2, y2)], "
                    "with coordinates normalised to [0, 1].")
        out.append(_record(frame, "box_object", k, question, format_box(box), "box", box))
    return out


_ORDERS = {  # name -> (words, key to minimise, least gap in that key between the first and the second)
    "leftmost": ("the leftmost {label}", lambda f, o: _u(f, o), LEFT_RIGHT_MARGIN),
    "rightmost": ("the rightmost {label}", lambda f, o: -_u(f, o), LEFT_RIGHT_MARGIN),
    "nearest": ("the {label} nearest to the camera", lambda f, o: _distance(f, o), DISTANCE_MARGIN),
    "farthest": ("the {label} farthest from the camera", lambda f, o: -_distance(f, o), DISTANCE_MARGIN),
}


@family("refer_order", "spatial_grounding", "projected 3D centres (left/right) and camera distances (near/far) "
                                            "of same-category objects; points inside the chosen one's mask")
def refer_order(frame: Frame, rng: np.random.Generator) -> list[dict]:
    out = []
    groups = Counter(o.label for o in frame.objects)
    for label in _some(rng, sorted(lab for lab, n in groups.items() if n >= 2)):
        members = [o for o in frame.objects if o.label == label]
        if not all(frame.visible(o) for o in members):  # a hidden one might be the leftmost
            continue
        words, key, margin = _ORDERS[str(rng.choice(list(_ORDERS)))]
        ranked = sorted(members, key=lambda o: key(frame, o))
        if key(frame, ranked[1]) - key(frame, ranked[0]) < margin:
            continue
        mask = frame.mask(ranked[0])
        question = f"Point to {words.format(label=label)}."
        out.append(_point_record(frame, "refer_order", len(out), question, mask, _some_points(mask, rng)))
    return out


@family("refer_anchor", "spatial_grounding", "3D centre distances between objects: the object closest to a named "
                                             "anchor; points inside its visible mask")
def refer_anchor(frame: Frame, rng: np.random.Generator) -> list[dict]:
    out = []
    movable = [o for o in frame.objects if o.movable]
    for anchor in _some(rng, [o for o in frame.named() if o.movable]):
        others = sorted((o for o in movable if o.name != anchor.name),
                        key=lambda o: float(np.linalg.norm(o.center - anchor.center)))
        if len(others) < 2 or not frame.visible(others[0]):
            continue
        gap = np.linalg.norm(others[1].center - anchor.center) - np.linalg.norm(others[0].center - anchor.center)
        if gap < DISTANCE_MARGIN:
            continue
        mask = frame.mask(others[0])
        question = f"Point to the object closest to the {anchor.label}."
        out.append(_point_record(frame, "refer_anchor", len(out), question, mask, _some_points(mask, rng)))
    return out


def _relations(frame: Frame, a: SceneObject, b: SceneObject) -> list[tuple[str, str]]:
    """Clear camera-frame relations of `a` to `b` as (true phrase, false phrase) pairs."""
    out = []
    du = _u(frame, a) - _u(frame, b)
    if abs(du) >= LEFT_RIGHT_MARGIN:
        left, right = "to the left of", "to the right of"
        out.append((left, right) if du < 0 else (right, left))
    dz = _depth(frame, a) - _depth(frame, b)
    if abs(dz) >= DEPTH_MARGIN:
        front, behind = "in front of", "behind"
        out.append((front, behind) if dz < 0 else (behind, front))
    return out


@family("relation", "spatial_grounding", "projected 3D centres (left/right) and camera-frame depth of the centres "
                                         "(in front of/behind); near-ties skipped; both polarities")
def relation(frame: Frame, rng: np.random.Generator) -> list[dict]:
    out = []
    for a, b in _some(rng, list(combinations(frame.named(), 2))):
        if rng.random() < 0.5:
            a, b = b, a
        options = _relations(frame, a, b)
        if not options:
            continue
        true, false = options[int(rng.integers(len(options)))]
        for phrase, answer in ((true, "yes"), (false, "no")):
            question = f"In the image, is the {a.label} {phrase} the {b.label}?" + YES_NO
            out.append(_record(frame, "relation", len(out), question, answer, "yesno", answer))
    return out


@family("closer", "spatial_grounding", "camera distances of the objects' 3D centres; near-ties skipped")
def closer(frame: Frame, rng: np.random.Generator) -> list[dict]:
    out = []
    for a, b in _some(rng, list(combinations(frame.named(), 2)), 2):
        da, db = _distance(frame, a), _distance(frame, b)
        if abs(da - db) < DISTANCE_MARGIN:
            continue
        near, far = (a, b) if da < db else (b, a)
        options, answer, letter = _choice(rng, near.label, [far.label])
        question = f"Which object is closer to the camera? {options}"
        out.append(_record(frame, "closer", len(out), question, answer, "choice", letter))
    return out


@family("distance", "spatial_grounding", "simulator poses: distance between the objects' 3D centres, in cm")
def distance(frame: Frame, rng: np.random.Generator) -> list[dict]:
    out = []
    for k, (a, b) in enumerate(_some(rng, list(combinations(frame.named(), 2)), 2)):
        cm = int(round(100 * float(np.linalg.norm(a.center - b.center))))
        question = f"How far apart are the centres of the {a.label} and the {b.label}, in centimetres?"
        out.append(_record(frame, "distance", k, question, f"{cm} cm", "distance", cm))
    return out


# -------------------------------------------------------------------------------- affordance
@family("free_space", "affordance", "support plane under the object intersected with each pixel's ray, kept where "
                                    "the rendered depth matches within 2.5 cm and no object's footprint is near")
def free_space(frame: Frame, rng: np.random.Generator) -> list[dict]:
    out = []
    for obj in _some(rng, [o for o in frame.named() if o.movable and not o.held], 2):
        mask = free_space_mask(frame, obj)
        if mask.sum() < frame.min_pixels:
            continue
        question = f"Point to free space next to the {obj.label} where an object could be put down."
        out.append(_point_record(frame, "free_space", len(out), question, mask, _some_points(mask, rng)))
    return out


@family("goal_place", "affordance", "BDDL goal predicate: the visible mask of the receptacle object, or of the "
                                    "goal region site's box on its parent")
def goal_place(frame: Frame, rng: np.random.Generator) -> list[dict]:
    out = []
    for goal in frame.goals:
        obj = frame.by_name(goal.obj)
        if obj is None or not frame.unique(obj):
            continue
        if goal.region is not None:
            mask = region_mask(frame, goal.region)
        else:
            target = frame.by_name(goal.target)
            mask = frame.mask(target) if target is not None else np.zeros(frame.size, bool)
        if mask.sum() < frame.min_pixels:
            continue
        word = "in" if goal.relation == "in" else "on"
        question = f"The task is: {frame.instruction}. Point to the place the {obj.label} must be put {word}."
        out.append(_point_record(frame, "goal_place", len(out), question, mask, _some_points(mask, rng)))
    return out


@family("grasp_point", "affordance", "the scripted expert's planned grasp (grip-site position) projected into the "
                                     "image; the object's visible pixels within 2 cm of it")
def grasp_point(frame: Frame, rng: np.random.Generator) -> list[dict]:
    out = []
    h, w = frame.size
    rows, cols = np.mgrid[0:h, 0:w] + 0.5
    for obj in _some(rng, [o for o in frame.named() if o.movable and not o.held and o.grasp is not None], 2):
        uv = frame.project(obj.grasp)[0]
        radius = abs(frame.intrinsics[0, 0]) * GRASP_RADIUS / float(frame.to_camera(obj.grasp)[0, 2])
        near = (cols - uv[0]) ** 2 + (rows - uv[1]) ** 2 <= radius**2
        mask = frame.mask(obj) & near
        if mask.sum() < max(4, frame.min_pixels // 4):
            continue
        # the answer is the region's pixel nearest to the grasp point
        rr, cc = np.nonzero(mask)
        i = int(np.argmin((cc + 0.5 - uv[0]) ** 2 + (rr + 0.5 - uv[1]) ** 2))
        answer = format_points(frame.normalised([[cc[i] + 0.5, rr[i] + 0.5]]))
        question = f"Point to where the robot should grasp the {obj.label}."
        out.append(_record(frame, "grasp_point", len(out), question + POINTS, answer, "point", frame.add_mask(mask)))
    return out


@family("handle_point", "affordance", "geom-level segmentation: the visible pixels of the visual geoms of a "
                                      "drawer's or door's moving body that stick out of its main panel (the "
                                      "handle), or of a stove knob's body")
def handle_point(frame: Frame, rng: np.random.Generator) -> list[dict]:
    out = []
    for part in _some(rng, [p for p in frame.parts if p.mask.sum() >= frame.min_pixels]):
        question = str(rng.choice([f"Point to {part.words}.", f"Where is {part.words}?"]))
        out.append(_point_record(frame, "handle_point", len(out), question, part.mask, _some_points(part.mask, rng)))
    return out


@family("gripper_trace", "affordance", "the scripted expert's rollout: the gripper's (grip site's) world positions "
                                       "now and every 0.4 s for 2 s, projected with the camera; points outside "
                                       "the image dropped")
def gripper_trace(frame: Frame, rng: np.random.Generator) -> list[dict]:
    if frame.gripper_future is None:
        return []
    h, w = frame.size
    ahead = frame.to_camera(frame.gripper_future)[:, 2] > 0
    uv = frame.project(frame.gripper_future[ahead])
    uv = uv[(uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h)]
    if len(uv) < 2:
        return []
    trace = frame.normalised(uv).round(3)
    question = (f"The task is: {frame.instruction}. Trace the gripper's path over the next two seconds, from where "
                "it is now, as points [(x, y), ...] normalised to [0, 1].")  # short: the answer is long
    return [_record(frame, "gripper_trace", 0, question, format_points(trace), "trace", trace.tolist())]


# ------------------------------------------------------------------------ embodied reasoning
@family("success", "embodied_reasoning", "the environment's success check (BDDL goal) on frames of scripted-expert "
                                         "rollouts; primary and wrist views")
def success(frame: Frame, rng: np.random.Generator) -> list[dict]:
    if frame.wrist_image is None or (not frame.success and rng.random() >= NEGATIVE_SUCCESS_SHARE):
        return []
    answer = "yes" if frame.success else "no"
    question = (f"The first image is the scene camera, the second the wrist camera. The robot's task is: "
                f"{frame.instruction}. Has the task been completed?" + YES_NO)
    return [_record(frame, "success", 0, question, answer, "yesno", answer, two_view=True)]


@family("next_object", "embodied_reasoning", "the scripted expert's plan from the BDDL goal: the object of the first "
                                             "move step whose predicate does not hold yet")
def next_object(frame: Frame, rng: np.random.Generator) -> list[dict]:
    right = frame.by_name(frame.next_object) if frame.next_object else None
    if right is None or not frame.visible(right) or not frame.unique(right):
        return []
    wrong = [o.label for o in _some(rng, [o for o in frame.named() if o.movable and o.name != right.name])]
    if not wrong:
        return []
    options, answer, letter = _choice(rng, right.label, wrong)
    question = f"The task is: {frame.instruction}. Which object should the robot move next? {options}"
    return [_record(frame, "next_object", 0, question, answer, "choice", letter)]


# Steps of one phase could run in either order (the expert keeps the planner's, then the BDDL's), so a pending
# step of the right one's phase is never offered as a wrong option.
_PHASES = {"open": 0, "turnon": 0, "turnoff": 0, "move": 1, "close": 2}


@family("subtask", "embodied_reasoning", "the scripted expert's plan from the BDDL goal, with each step's goal "
                                         "predicate checked in the frame: the first step at the start; while the "
                                         "robot holds the object of the first pending move, that move and the "
                                         "pending step after it; wrong options are other steps of the scene")
def subtask(frame: Frame, rng: np.random.Generator) -> list[dict]:
    pending = [s for s in frame.plan if s in frame.pending]
    if not pending:
        return []
    task = f"The task is: {frame.instruction}."
    asked = []  # (question, the right step, the pending steps that could run at that point too if of its phase)
    if frame.start:
        asked.append((f"{task} Which step comes first?", pending[0], pending))
    if pending[0].kind == "move" and [o.name for o in frame.objects if o.held] == [pending[0].obj]:
        asked.append((f"{task} Which step is under way?", pending[0], []))
        if len(pending) > 1:
            asked.append((f"{task} Which step comes after the one under way?", pending[1], pending[1:]))
    out = []
    for question, right, rivals in asked:
        words = frame.step_words.get(right)
        same_phase = {s for s in rivals if _PHASES[s.kind] == _PHASES[right.kind]}
        wrong = sorted({w for s, w in frame.step_words.items() if s not in same_phase and s != right and w != words})
        if words is None or not wrong:
            continue
        options, answer, letter = _choice(rng, words, _some(rng, wrong, 2), article="")  # 3 options: steps are long
        out.append(_record(frame, "subtask", len(out), f"{question} {options}", answer, "choice", letter))
    return out
