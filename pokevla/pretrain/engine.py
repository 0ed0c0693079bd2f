"""`pokevla generate knowledge`: world-knowledge records from simulated LIBERO scenes, exact labels.

A scene is a fresh sample of a task's BDDL placement regions (seeded, with the official spread of
arm-joint noise; never an official init state). The scripted expert solves it without rendering;
a few of its states (the start, evenly spaced ones, the end) are restored in a camera environment
and rendered with instance and geom segmentation and metric depth; the rollout also gives each frame
the gripper's path ahead. Each rendered frame then feeds every question family
(`pokevla.pretrain.families`), so one render yields dozens of records. With `restyle`, a share of the
train/val scenes is rendered with a random table and wall (`pokevla.sim.perturb.background.restyled`),
so that appearance does not name the scene; with `move_camera`, a share is seen from a moved third-person
camera (`pokevla.sim.perturb.camera.moved`), so that an object's usual place in the image does not name it;
with `scatter`, a share is built from the task's BDDL with every table region widened to the whole table and
a few distractors added (`pokevla.sim.perturb.layout.scattered`), so that neither where an object stands nor
which objects stand near it names it.

Output (the layout `pokevla.pretrain.records` describes): DIR/{train,val,heldout}.jsonl, the PNGs
under DIR/images/<suite>/task<NN>/scene<NNNNN>/, DIR/meta.json, and DIR/journal.jsonl, one line per
finished scene. A scene's images are written first, then its records, then its journal line; a
rerun of the same command drops records of scenes the journal does not hold and continues.
Splits are by scene: the `heldout_suites` go to heldout; of the other scenes a fixed 5% (by a
hash of the scene id) go to val.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from pokevla.common.errors import ConfigError, DatasetError
from pokevla.common.io import (append_jsonl, append_jsonl_many, hold_dir, read_json, read_jsonl, write_bytes_atomic,
                               write_json_atomic)
from pokevla.common.versions import package_versions
from pokevla.expert.planner import Step
from pokevla.pretrain.families import FAMILIES, frame_records
from pokevla.pretrain.frames import Frame, Goal, Part, Region, SceneObject, readable_name
from pokevla.pretrain.records import SPLITS
from pokevla.scale import LOCAL, Cluster
from pokevla.sim.perturb.spec import BackgroundSpec, CameraSpec, LayoutSpec
from pokevla.sim.suites import OFFICIAL_INIT_JOINT_STD

FRAMES_PER_SCENE = 6  # the start, 4 states along the expert's rollout, its last state
TRACE_STRIDE = 8  # steps between the points of a gripper trace: 0.4 s at LIBERO's 20 Hz
TRACE_POINTS = 6  # now and 5 later positions, 2 s ahead (few: the tiny preset's context is 384 byte tokens)
VAL_FRACTION = 0.05
HELDOUT_SHARE = 0.1  # of --samples, generated from the held-out suites (when there are any)
SCATTER_BLOCK = 8  # consecutive scenes of a task that share a scattered layout: building its envs takes ~5 s
FIRST_GUESS_PER_SCENE = 100  # records per scene assumed before the first scene of a group is done
JOURNAL = "journal.jsonl"
META = "meta.json"


@dataclass(frozen=True)
class KnowledgeConfig:
    suites: tuple[str, ...]
    out: str
    samples: int = 10_000  # at least this many records in all splits together
    heldout_suites: tuple[str, ...] = ()
    resolution: int = 224
    workers: int = 1
    seed: int = 0
    fast_render: bool = False
    restyle: float = 0.0  # share of train/val scenes rendered with a random table and wall (held-out scenes never)
    move_camera: float = 0.0  # share of train/val scenes seen from a moved third-person camera (held-out never)
    scatter: float = 0.0  # share of train/val scenes with objects and fixtures anywhere on the table (held-out never)
    recompose: float = 0.0  # share of the scattered scenes that also lose and gain objects (see scene_layout)
    cluster: Cluster = LOCAL

    def __post_init__(self) -> None:
        from pokevla.sim import suites

        if not self.suites:
            raise ConfigError("--suites names no suite; give e.g. --suites libero_object")
        for name in (*self.suites, *self.heldout_suites):
            suites.get_suite(name)
        both = sorted(set(self.suites) & set(self.heldout_suites))
        if both:
            raise ConfigError(f"{', '.join(both)} cannot be both a training and a held-out suite; "
                              "drop it from --suites or --heldout-suites")
        if self.samples < 1:
            raise ConfigError(f"--samples must be at least 1, got {self.samples}")
        if not 32 <= self.resolution <= 1024:
            raise ConfigError(f"--resolution {self.resolution} is out of range; use 32-1024 px (224 is usual)")
        for flag, share in (("--restyle", self.restyle), ("--move-camera", self.move_camera), ("--scatter", self.scatter),
                            ("--recompose", self.recompose)):
            if not 0.0 <= share <= 1.0:
                raise ConfigError(f"{flag} {share} is not a share of scenes; use 0-1 (e.g. 0.5)")
        if self.recompose and not self.scatter:
            raise ConfigError("--recompose changes scattered scenes only; give --scatter too (e.g. --scatter 1)")

    def settings(self) -> dict:
        """What a resumed run must share with the first (--samples may grow, --workers may change)."""
        return {"suites": list(self.suites), "heldout_suites": list(self.heldout_suites),
                "resolution": self.resolution, "seed": self.seed, "fast_render": self.fast_render,
                "restyle": self.restyle, "move_camera": self.move_camera, "scatter": self.scatter,
                "recompose": self.recompose, "frames_per_scene": FRAMES_PER_SCENE, "val_fraction": VAL_FRACTION,
                "init_joint_noise": OFFICIAL_INIT_JOINT_STD, "families": list(FAMILIES)}


@dataclass(frozen=True)
class SceneJob:
    suite: str
    task_id: int
    index: int  # the scene's number within its task: its reset seed
    split: str
    resolution: int
    fast_render: bool
    base_seed: int
    restyle: float = 0.0
    move_camera: float = 0.0
    scatter: float = 0.0
    recompose: float = 0.0
    absent_labels: tuple[str, ...] = field(default=(), compare=False)  # asset names of the other scenes

    @property
    def scene(self) -> str:
        return scene_id(self.suite, self.task_id, self.index)


def scene_id(suite: str, task_id: int, index: int) -> str:
    return f"{suite}/task{task_id:02d}/scene{index:05d}"


def split_of(scene: str, heldout: bool) -> str:
    """heldout for held-out suites, else val for a fixed VAL_FRACTION of scene ids (by hash), else train."""
    if heldout:
        return "heldout"
    bucket = int(hashlib.sha1(scene.encode()).hexdigest()[:8], 16) % 10_000
    return "val" if bucket < VAL_FRACTION * 10_000 else "train"


def frame_steps(num_steps: int, frames: int = FRAMES_PER_SCENE) -> list[int]:
    """Indices of the recorded states to render (0 = the start); the rollout's end is added after them."""
    return sorted({int(t) for t in np.linspace(0, num_steps, frames - 1, endpoint=False)} & set(range(num_steps)))


# ---------------------------------------------------------------------------------------- worker
def run_scene(job: SceneJob) -> dict:
    """Worker: one fresh scene, solved by the expert, rendered at a few states; returns its records
    and the encoded images and masks they name."""
    from pokevla.data.lerobot import encode_png
    from pokevla.expert.rollout import run_episode
    from pokevla.sim.env import EnvConfig
    from pokevla.sim.parallel import cached_env
    from pokevla.sim.perturb.background import restyled
    from pokevla.sim.perturb.camera import moved

    t0 = time.perf_counter()
    layout = scene_layout(job)
    base = dict(seed=job.base_seed, init_joint_noise=OFFICIAL_INIT_JOINT_STD, perturbation=layout)
    physics = cached_env(EnvConfig(job.suite, job.task_id, render=False, **base))
    try:
        rollout = run_episode(physics, seed=job.index)
        steps = frame_steps(rollout.num_steps) + [rollout.num_steps]  # the last: the state after the rollout
        states = [rollout.sim_states[t] for t in steps[:-1]] + [physics.get_sim_state()]
        futures = [gripper_future(rollout.robot_states, t) for t in steps]
        solved, expert_error = rollout.success, None
    except ValueError as e:  # a goal or object the expert has no skill for: the scene is labelled where it stopped
        steps, states, futures = [None], [physics.get_sim_state()], [None]
        solved, expert_error = False, str(e)
    camera = cached_env(EnvConfig(job.suite, job.task_id, resolution=job.resolution, depth=True, segmentation=True,
                                  fast_render=job.fast_render, **base))
    camera.set_fixture_poses(physics.fixture_poses())
    rng = np.random.default_rng([job.base_seed, _stable(job.suite), job.task_id, job.index])
    background, view = scene_background(job), scene_camera(job)
    records: list[dict] = []
    files: dict[str, bytes] = {}
    with restyled(camera, background), moved(camera, view):
        for k, (t, state, future) in enumerate(zip(steps, states, futures)):
            obs = camera.set_sim_state(state)
            frame = frame_from_env(camera, obs, job, k, start=t == 0, future=future)
            files[frame.image] = encode_png(obs["observation.images.primary"])
            files[frame.wrist_image] = encode_png(obs["observation.images.wrist"])
            records += frame_records(frame, rng)
            files.update({path: encode_png(mask) for path, mask in frame.masks.items()})
    return {"scene": job.scene, "suite": job.suite, "task_id": job.task_id, "index": job.index, "split": job.split,
            "expert_success": solved, "expert_error": expert_error, "records": records, "files": files,
            "background": None if background is None else background.to_dict(),
            "camera": None if view is None else view.to_dict(),
            "layout": None if layout is None else layout_changes(job, layout),
            "seconds": round(time.perf_counter() - t0, 2)}


def _look_rng(job: SceneJob, share: float, what: str, index: int | None = None) -> np.random.Generator | None:
    """A generator for the job's `what` change, or None when the scene keeps its own: a fixed function of the
    job and `index` (default: the scene's; a resumed run draws the same), `share` of train/val scenes, never a
    held-out one."""
    index = job.index if index is None else index
    rng = np.random.default_rng([job.base_seed, _stable(job.suite), job.task_id, index, _stable(what)])
    return None if job.split == "heldout" or rng.random() >= share else rng


def scene_background(job: SceneJob) -> BackgroundSpec | None:
    """The random table (and for a "theme", wall) a restyled scene is rendered with, drawn like LIBERO-Plus's
    background variants at a random level (asset textures, or procedural patterns with stronger tints)."""
    from pokevla.sim.perturb.sample import backdrop

    rng = _look_rng(job, job.restyle, "background")
    return None if rng is None else backdrop(int(rng.integers(1, 6)), rng)


def scene_camera(job: SceneJob) -> CameraSpec | None:
    """The moved third-person camera a scene is seen from, drawn like LIBERO-Plus's camera variants at levels
    1-3 (orbits up to 45 degrees, up to 1.66x the distance): objects then sit elsewhere in the image, so that
    pointing cannot lean on where an object usually is in a suite's fixed view."""
    from pokevla.sim.perturb.sample import camera

    rng = _look_rng(job, job.move_camera, "camera")
    return None if rng is None else camera(int(rng.integers(1, 4)), rng)


def scene_layout(job: SceneJob) -> LayoutSpec | None:
    """The scattered layout a scene is built from: the task's BDDL with its table regions widened to the whole
    table (each reset then places everything anywhere, clear of each other) and 1-3 distractors of categories
    the scene lacks. Drawn per block of SCATTER_BLOCK scenes, which share their envs; placements differ by scene.

    A recomposed block (`job.recompose` of them) instead loses each object or fixture that the task does not
    use with probability 1/2 and gains 1-4 objects of any LIBERO-90 category it lacks: in LIBERO-90 a scene's
    look names its objects (every task of a scene holds the same ones), and a VLM that answers "is there a
    microwave?" from the walls has learnt nothing it can use in a new scene."""
    from pokevla.sim.perturb import layout

    rng = _look_rng(job, job.scatter, "layout", index=job.index // SCATTER_BLOCK)
    if rng is None:
        return None
    text = _task_bddl(job)
    count = int(rng.integers(1, 4))
    recompose = _look_rng(job, job.recompose, "recompose", index=job.index // SCATTER_BLOCK)
    if recompose is None:
        return LayoutSpec(count, "scatter", bddl_text=layout.scattered(text, layout.plan_categories(text, count, rng)))
    drop = tuple(name for name in layout.droppable(text) if recompose.random() < 0.5)
    extra = layout.plan_categories(text, int(recompose.integers(1, 5)), recompose, layout.SCENE_OBJECT_CATEGORIES)
    return LayoutSpec(len(extra), "scatter", bddl_text=layout.scattered(text, extra, drop))


def layout_changes(job: SceneJob, spec: LayoutSpec) -> dict:
    """For the journal: the categories a scattered scene gained and the names of the things it lost."""
    from pokevla.sim.perturb import layout

    def names(text: str) -> set[str]:
        return {name for name, _ in layout.things_in(text)}

    return {"distractors": [category for name, category in layout.objects_in(spec.bddl_text) if layout.is_distractor(name)],
            "dropped": sorted(names(_task_bddl(job)) - names(spec.bddl_text))}


def _task_bddl(job: SceneJob) -> str:
    from pokevla.sim import suites

    return Path(suites.get_task(job.suite, job.task_id).bddl_path).read_text()


def _stable(text: str) -> int:
    return int(hashlib.sha1(text.encode()).hexdigest()[:8], 16)


def gripper_future(robot_states: np.ndarray, t: int) -> np.ndarray | None:
    """(TRACE_POINTS, 3) world positions of the gripper at step t and every TRACE_STRIDE steps after it, from a
    rollout's robot states (T, 8) (eef xyz first), or None when the rollout ends before the last of them."""
    steps = t + TRACE_STRIDE * np.arange(TRACE_POINTS)
    return robot_states[steps, :3].astype(np.float64) if steps[-1] < len(robot_states) else None


def frame_from_env(env, obs: dict, job: SceneJob, k: int, start: bool = False,
                   future: np.ndarray | None = None) -> Frame:
    """The labels of the camera env's current state (primary view), read from the simulator. `start`: the
    rollout's first state; `future`: the gripper's positions ahead (`gripper_future`)."""
    from pokevla.expert.scene import Scene
    from pokevla.sim.env import CAMERAS, camera_matrices

    scene = Scene(env)
    names = env.instance_names
    instance = {name: i + 1 for i, name in enumerate(names)}
    objects = [_scene_object(scene, name, instance.get(name, 0)) for name in (*scene.movable_objects, *scene.fixtures)]
    labels = Counter(o.label for o in objects)
    folder = f"images/{job.scene}"
    plan, pending = _plan_state(scene)
    articulated = _articulations(scene, labels)
    geoms = obs["observation.geoms.primary"]
    _, cam_to_world = camera_matrices(env.sim, CAMERAS["primary"], job.resolution)
    return Frame(
        id=f"{job.scene}/f{k}", scene=job.scene, image=f"{folder}/f{k}_primary.png",
        wrist_image=f"{folder}/f{k}_wrist.png", instances=obs["observation.instances.primary"],
        depth=obs["observation.depth.primary"], intrinsics=obs["observation.intrinsics.primary"].astype(np.float64),
        cam_to_world=cam_to_world, objects=objects, instruction=env.instruction, success=env.check_success(),
        goals=_goals(scene, instance),
        next_object=next((s.obj for s in plan if s in pending and s.kind == "move"), None),
        plan=plan, pending=pending, step_words=_step_words(scene, plan, objects, articulated), start=start,
        gripper_future=future, parts=[Part(a.handle, np.isin(geoms, a.geoms)) for a in articulated],
        absent_labels=tuple(lab for lab in job.absent_labels if lab not in labels))


def _scene_object(scene, name: str, instance: int) -> SceneObject:
    from pokevla.expert import grasps

    box = scene.box(name)
    movable = name in scene.raw.objects_dict
    held = movable and scene.in_contact(name, scene.robot_bodies)
    grasp = None
    if movable and not held:
        try:
            grasp = grasps.plan_grasp(scene, name).point  # what the expert's pick skill would aim for
        except ValueError:  # wider than the open gripper on every side: the expert has no grasp either
            grasp = None
    return SceneObject(name=name, label=readable_name(scene.category(name)), lo=box.lo, hi=box.hi,
                       instance=instance, movable=movable, held=held, grasp=grasp)


def _goals(scene, instance: dict[str, int]) -> list[Goal]:
    """The goal's placements: `(On|In obj target)` predicates, a region target with its site box."""
    goals = []
    for pred in scene.raw.parsed_problem["goal_state"]:
        if pred[0].lower() not in ("on", "in"):
            continue
        obj, target = pred[1], pred[2]
        region = None
        if scene.is_site(target):
            region = Region(center=scene.site_pos(target), rotation=scene.site_mat(target),
                            half=scene.site_half_size(target), instance=instance.get(scene.parent_of_site(target), 0))
        goals.append(Goal(obj=obj, relation=pred[0].lower(), target=target, region=region))
    return goals


def _plan_state(scene) -> tuple[tuple[Step, ...], frozenset[Step]]:
    """The scripted expert's plan from the BDDL goal, and those of its steps whose predicate does not hold
    now (the checks the expert makes before each step)."""
    from pokevla.expert.planner import plan

    drawers = {s for s in scene.raw.object_sites_dict if scene.site_joints(s)}
    steps = tuple(plan(scene.raw.parsed_problem["goal_state"], drawers))
    return steps, frozenset(s for s in steps if not _holds(scene, s))


def _holds(scene, step: Step) -> bool:
    pred = [step.kind, step.obj] if step.target is None else [step.relation, step.obj, step.target]
    return bool(scene.raw._eval_predicate(pred))


@dataclass(frozen=True)
class Articulation:
    """A moving part of a fixture: a drawer, a door or a stove knob."""

    name: str  # what the plan's steps name: a drawer's region site, else the fixture
    words: str  # "the top drawer of the wooden cabinet", "the microwave", "the stove"
    handle: str  # "the handle of the top drawer of the wooden cabinet", "the knob of the stove"
    verbs: tuple[str, str]  # the step kinds that act on it: ("open", "close") or ("turnon", "turnoff")
    geoms: tuple[int, ...]  # the visual geoms of its handle or knob


def _articulations(scene, labels: Counter) -> list[Articulation]:
    """The drawers (slide joints), doors (hinges with a handle) and stove knobs of the fixtures whose
    readable name is unique. A handle is the visual geoms of the joint's body whose centres lie outside
    the box of its largest one (a drawer's box, a door's panel); a knob's body is all knob."""
    import mujoco

    out = []
    for fixture in scene.fixtures:
        label = readable_name(scene.category(fixture))
        if labels[label] != 1:
            continue
        for joint in scene.object_joints(fixture):
            boxes = scene.visual_boxes(scene.joint_body(joint))
            if not boxes:
                continue
            main = max(boxes.values(), key=lambda b: float(np.prod(b.size)))
            handle = tuple(g for g, b in boxes.items() if np.any((b.center < main.lo) | (b.center > main.hi)))
            hinge = scene.model.jnt_type[scene.model.joint(joint).id] == mujoco.mjtJoint.mjJNT_HINGE
            level = re.fullmatch(rf"{re.escape(fixture)}_(top|middle|bottom)_level", joint)
            site = next((s for s in scene.raw.object_sites_dict if joint in scene.site_joints(s)), None)
            if not hinge and handle and level and site:
                words = f"the {level[1]} drawer of the {label}"
                out.append(Articulation(site, words, f"the handle of {words}", ("open", "close"), handle))
            elif hinge and handle:
                out.append(Articulation(fixture, f"the {label}", f"the handle of the {label} door", ("open", "close"),
                                        handle))
            elif hinge and "stove" in label:
                out.append(Articulation(fixture, f"the {label}", f"the knob of the {label}", ("turnon", "turnoff"),
                                        tuple(boxes)))
    return out


_VERBS = {"open": "open", "close": "close", "turnon": "turn on", "turnoff": "turn off"}
_REGION_PLACES = {  # a region site of a fixture or object -> where a thing put there is, in words
    "contain_region": "{rel} the {label}", "cook_region": "{rel} the {label}", "heating_region": "{rel} the {label}",
    "top_side": "on top of the {label}", "top_region": "{rel} the top of the {label}",
    "back_contain_region": "{rel} the back compartment of the {label}",
}


def _place(scene, target: str, relation: str, labels: Counter, drawers: dict[str, str]) -> str | None:
    """Where a move puts its object, in words ("in the top drawer of the wooden cabinet", "on the plate"), or
    None where a name would be ambiguous or the region has no words (regions of the table)."""
    if target in drawers:
        return f"{relation} {drawers[target]}"
    parent = scene.parent_of_site(target) if scene.is_site(target) else target
    if parent is None:  # a region of the table itself
        return None
    label = readable_name(scene.category(parent))
    if labels[label] != 1:
        return None
    if not scene.is_site(target):
        return f"{relation} the {label}"
    template = _REGION_PLACES.get(target[len(parent) + 1:])
    return template.format(rel=relation, label=label) if template else None


def _step_words(scene, plan: tuple[Step, ...], objects: list[SceneObject],
                articulated: list[Articulation]) -> dict[Step, str]:
    """The plan's steps and plausible wrong ones, in words: moves of the movable objects with a unique name
    that share their object or their place with a move of the plan (places: the plan's and the other such
    objects, save a receptacle whose region the plan names: "on the basket" would read as "in the basket"),
    opening and closing each drawer and door, turning each stove on and off."""
    labels = Counter(o.label for o in objects)
    drawers = {a.name: a.words for a in articulated if scene.is_site(a.name)}
    movers = [o for o in objects if o.movable and labels[o.label] == 1]
    goals = {s.target: s.relation for s in plan if s.kind == "move"}
    moved = {s.obj for s in plan if s.kind == "move"}
    covered = {scene.parent_of_site(t) for t in goals if scene.is_site(t)}
    places = {**{o.name: "on" for o in movers if o.name not in covered}, **goals}
    words = {}
    for obj in movers:
        for target, relation in places.items():
            owner = scene.parent_of_site(target) if scene.is_site(target) else target  # not into itself
            place = _place(scene, target, relation, labels, drawers)
            if (obj.name in moved or target in goals) and owner != obj.name and place is not None:
                words[Step("move", obj.name, target, relation)] = f"put the {obj.label} {place}"
    for a in articulated:
        words.update({Step(kind, a.name): f"{_VERBS[kind]} {a.words}" for kind in a.verbs})
    return words


# ------------------------------------------------------------------------------------- main loop
def asset_labels() -> tuple[str, ...]:
    """Readable names of every object and fixture category in the BDDL files of all suites (tables and
    floors aside): the names a presence question may ask about where the scene lacks them."""
    from pokevla.sim import suites

    labels = set()
    for task in (t for name in suites.SUITES for t in suites.list_tasks(name)):
        text = Path(task.bddl_path).read_text()
        for block in re.findall(r"\(:(?:objects|fixtures)(.*?)\)", text, flags=re.S):
            for category in re.findall(r"-\s*(\w+)", block):
                if "table" not in category and "floor" not in category:
                    labels.add(readable_name(category))
    return tuple(sorted(labels))


def generate_knowledge(config: KnowledgeConfig, progress: bool = True) -> dict:
    """Generates (or resumes) a knowledge dataset; returns a summary with the throughput."""
    from tqdm import tqdm

    from pokevla.sim.parallel import map_unordered

    root = Path(config.out)
    settings = config.settings()
    _check_same_settings(root, settings)
    hold_dir(root)
    done = read_jsonl(root / JOURNAL, keys=("scene", "suite", "task_id", "index", "split", "records", "families"))
    _drop_unjournaled(root, done)
    groups = _groups(config)
    vocabulary = asset_labels()
    write_meta(root, config, done)

    bar = tqdm(total=config.samples, initial=min(config.samples, _total(done)), desc="knowledge", unit="sample",
               disable=not progress)
    t_start, new_scenes, new_samples = time.perf_counter(), 0, 0
    while True:
        jobs = _next_jobs(config, groups, done, vocabulary)
        if not jobs:
            break
        with contextlib.closing(map_unordered(run_scene, jobs, config.workers, config.cluster)) as results:
            for result in results:
                entry = write_scene(root, result)
                done.append(entry)
                new_scenes += 1
                new_samples += entry["records"]
                bar.update(min(entry["records"], max(0, config.samples - bar.n)))
                if _group_reached(groups, done, _group_of(entry)):  # re-plan: its other scenes are not needed
                    break
        if _reached(config, groups, done):
            break
    bar.close()
    write_meta(root, config, done)
    elapsed = time.perf_counter() - t_start
    return {"out": str(root), "samples": _total(done), "scenes": len(done), "new_samples": new_samples,
            "new_scenes": new_scenes, "seconds": round(elapsed, 1),
            "samples_per_hour": round(3600 * new_samples / elapsed) if new_samples else None,
            "splits": _counts(done), "config": {**asdict(config), "cluster": asdict(config.cluster)}}


def _groups(config: KnowledgeConfig) -> dict[str, tuple[list, int]]:
    """Training and held-out tasks with their sample targets."""
    from pokevla.sim import suites

    heldout = round(HELDOUT_SHARE * config.samples) if config.heldout_suites else 0
    train_tasks = [t for s in config.suites for t in suites.list_tasks(s)]
    heldout_tasks = [t for s in config.heldout_suites for t in suites.list_tasks(s)]
    return {"train": (train_tasks, config.samples - heldout), "heldout": (heldout_tasks, heldout)}


def _group_of(entry: dict) -> str:
    return "heldout" if entry["split"] == "heldout" else "train"


def _group_reached(groups: dict, done: list[dict], group: str) -> bool:
    return sum(e["records"] for e in done if _group_of(e) == group) >= groups[group][1]


def _reached(config: KnowledgeConfig, groups: dict, done: list[dict]) -> bool:
    return all(_group_reached(groups, done, g) for g in groups)


def _next_jobs(config: KnowledgeConfig, groups: dict, done: list[dict], vocabulary: tuple[str, ...]) -> list[SceneJob]:
    """The scenes a round still needs, from each group's records per scene so far, spread over its
    tasks (those with the fewest scenes first, the suites' tasks interleaved) and sorted by task so that
    workers reuse environments."""
    jobs = []
    for group, (tasks, target) in groups.items():
        mine = [e for e in done if _group_of(e) == group]
        have = sum(e["records"] for e in mine)
        if have >= target or not tasks:
            continue
        if mine:
            count = math.ceil((target - have) / max(1.0, have / len(mine)))
        else:  # a first round of at most one scene per task measures the records per scene, so that a group
            # is not cut short in the order the jobs run (by suite and task) once an overshoot reaches its target
            count = min(len(tasks), math.ceil(target / FIRST_GUESS_PER_SCENE))
        scenes = Counter((e["suite"], e["task_id"]) for e in mine)
        last = {}
        for e in mine:
            key = (e["suite"], e["task_id"])
            last[key] = max(last.get(key, -1), e["index"])
        for _ in range(count):
            task = min(tasks, key=lambda t: (scenes[(t.suite, t.task_id)], t.task_id, t.suite))  # suites interleaved
            key = (task.suite, task.task_id)
            index = last.get(key, -1) + 1
            scenes[key] += 1
            last[key] = index
            jobs.append(SceneJob(task.suite, task.task_id, index, split_of(scene_id(*key, index), group == "heldout"),
                                 config.resolution, config.fast_render, config.seed, config.restyle,
                                 config.move_camera, config.scatter, config.recompose, vocabulary))
    return sorted(jobs, key=lambda j: (j.suite, j.task_id, j.index))


def write_scene(root: Path, result: dict) -> dict:
    """Images, then records, then the journal line: a scene is in the dataset once journaled."""
    for path, data in result["files"].items():
        write_bytes_atomic(root / path, data)
    if result["records"]:
        append_jsonl_many(root / f"{result['split']}.jsonl", result["records"])
    entry = {k: result[k] for k in ("scene", "suite", "task_id", "index", "split", "expert_success", "seconds")}
    if result.get("expert_error"):
        entry["expert_error"] = result["expert_error"]
    for look in ("background", "camera", "layout"):
        if result.get(look):
            entry[look] = result[look]
    entry["records"] = len(result["records"])
    entry["families"] = dict(Counter(r["family"] for r in result["records"]))
    append_jsonl(root / JOURNAL, entry)
    return entry


def _drop_unjournaled(root: Path, done: list[dict]) -> None:
    """Cuts each split file back to the records of journaled scenes: the lines of a scene whose run was
    interrupted before its journal line come last, since every scene appends its records in one go."""
    for split in SPLITS:
        path = root / f"{split}.jsonl"
        expected = sum(e["records"] for e in done if e["split"] == split)
        if not path.exists():
            if expected:
                raise DatasetError(f"{path} is missing but the journal holds {expected} records of it; "
                                   "use a new --out directory")
            continue
        lines = path.read_bytes().split(b"\n")
        complete = lines[:-1]  # the part after the last newline is empty or a torn line
        if len(complete) < expected:
            raise DatasetError(f"{path} holds {len(complete)} records, the journal {expected}; the file was "
                               "damaged: use a new --out directory")
        if len(complete) > expected or lines[-1]:
            write_bytes_atomic(path, b"".join(line + b"\n" for line in complete[:expected]))


def _total(done: list[dict]) -> int:
    return sum(e["records"] for e in done)


def _counts(done: list[dict]) -> dict[str, dict[str, int]]:
    """Records per family per split."""
    counts: dict[str, Counter] = {s: Counter() for s in SPLITS}
    for e in done:
        counts[e["split"]].update(e["families"])
    return {s: dict(sorted(c.items())) for s, c in counts.items()}


def write_meta(root: Path, config: KnowledgeConfig, done: list[dict]) -> None:
    meta = {
        "generator": config.settings(),
        "versions": package_versions(),
        "scenes": "fresh samples of the tasks' BDDL placement regions (seeded, official arm-joint spread), "
                  "never the official evaluation init states; split by scene",
        "families": {f.name: {"kind": f.kind, "source": f.source} for f in FAMILIES.values()},
        "scene_counts": dict(Counter(e["split"] for e in done)),
        "counts": _counts(done),
    }
    write_json_atomic(root / META, meta)


def _check_same_settings(root: Path, settings: dict) -> None:
    meta_path = root / META
    if not meta_path.exists():
        if root.exists() and any(p.name != ".lock" for p in root.iterdir()):
            raise DatasetError(f"{root} is not empty and holds no knowledge dataset; choose a new --out directory")
        return
    stored = read_json(meta_path, DatasetError).get("generator")
    if isinstance(stored, dict):
        # datasets from before these flags
        stored = {"restyle": 0.0, "move_camera": 0.0, "scatter": 0.0, "recompose": 0.0, **stored}
    if stored != settings:
        changed = sorted(k for k in settings if not isinstance(stored, dict) or stored.get(k) != settings[k])
        raise DatasetError(f"{root} was generated with other settings ({', '.join(changed) or 'unreadable'} differ); "
                           "rerun with the same flags or use another --out directory")
