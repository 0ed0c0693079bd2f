"""Do a dataset's episode starts cover the official evaluation init states of the same tasks?

A policy trained only from one arm pose meets 50 different ones at evaluation. This compares, per
task, the first frame of every generated episode (`meta/replay/episode_NNNNNN.npz`, the MuJoCo state
after the 10 settle steps) with the task's official init states, on the 7 arm joints (rad) and the
xy position of every movable object (m).

An init state is *inside* when each dimension lies within the data's [min, max] widened by a margin
of one standard deviation of the init states in that dimension (at least `MIN_MARGIN`). A margin
is needed because the range of N draws underestimates the spread they come from. Measured on three
tasks with synthetic starts: data drawn with the official spread (0.02 rad per joint) has a median
of 41/50 init states inside at 10 episodes per task, 47/50 at 20 and 49/50 at 50; data from one arm
pose has 0-3/50, data with half the spread at most 42/50 even at 50 episodes. Settling moves the arm
by 0.005-0.03 rad per joint (measured on libero_object task 0): the data is settled, the init states
are not, and the margin absorbs that too. A task is covered when at least `COVERED_FRACTION` of its
init states are inside. Nearest-neighbour distances, init state -> nearest training start, are
reported beside the same distance among the init states themselves, a reference for how dense
"dense enough" is.

Which entries of a flattened state (time, qpos, qvel) are the arm and the objects needs the MuJoCo
model, so the layout of every task is recorded once in `sim_layout.json` (`record_layouts`), and the
check itself runs without a simulator.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from pokevla.common.errors import DatasetError
from pokevla.data.reader import load_info
from pokevla.sim import suites

LAYOUT_PATH = Path(__file__).with_name("sim_layout.json")
MARGIN_STDS = 1.0  # margin around the data's range, in standard deviations of the init states
MIN_MARGIN = {"arm": 0.005, "object": 0.005}  # rad, m: objects that never move have a std of 0
COVERED_FRACTION = 0.9  # of a task's init states inside for the task to count as covered
_UNITS = {"arm": "rad", "object": "m"}


# ------------------------------------------------------------------ state layout
def record_layouts(path: str | Path = LAYOUT_PATH, suite_names: tuple[str, ...] = tuple(suites.SUITES)) -> dict:
    """Builds every task's env once (no rendering, ~3-8 s each) and writes where its arm and objects are.

    Layout of a task: {"nq", "nv", "arm": 7 qpos addresses, "objects": {name: qpos address of its free
    joint (xyz, quat wxyz)}}. Run again after a LIBERO upgrade; the check refuses states whose size
    does not match. Tasks of other suites already in `path` are kept.
    """
    from pokevla.common.io import write_json_atomic
    from pokevla.sim.env import EnvConfig, LiberoEnv

    path = Path(path)
    layouts = json.loads(path.read_text()) if path.exists() else {}
    for suite in suite_names:
        for task in suites.list_tasks(suite):
            with LiberoEnv(EnvConfig(suite, task.task_id, render=False)) as env:
                layouts[f"{suite}/{task.task_id}"] = _env_layout(env)
    write_json_atomic(path, layouts)
    return layouts


def _env_layout(env) -> dict:
    model = env.sim.model
    arm = [int(i) for i in env.raw_env.robots[0]._ref_joint_pos_indexes]
    objects = {}
    for name, obj in env.raw_env.objects_dict.items():
        joint = model.joint_name2id(obj.joints[0])
        if model.jnt_type[joint] != 0:  # mjJNT_FREE
            raise RuntimeError(f"object {name} of {env.config.suite} task {env.config.task_id} has no free joint")
        objects[name] = int(model.jnt_qposadr[joint])
    return {"nq": int(model.nq), "nv": int(model.nv), "arm": arm, "objects": objects}


def load_layout(suite: str, task_id: int) -> dict:
    """The recorded layout of one task (see `record_layouts`)."""
    layouts = json.loads(LAYOUT_PATH.read_text())
    key = f"{suite}/{task_id}"
    if key not in layouts:
        raise DatasetError(f"no recorded state layout for {suite} task {task_id}; "
                           "run pokevla.data.coverage.record_layouts() with the simulator installed")
    return layouts[key]


def _dims(states: np.ndarray, layout: dict) -> np.ndarray:
    """(N, D) flattened states -> (N, 7 + 2K): arm joints, then x, y of each of the K objects."""
    qpos = states[:, 1:1 + layout["nq"]]  # entry 0 is the time
    xy = [qpos[:, a:a + 2] for a in layout["objects"].values()]
    return np.concatenate([qpos[:, layout["arm"]], *xy], axis=1)


def _dim_names(layout: dict) -> list[tuple[str, str]]:
    """(group, name) of each column of `_dims`."""
    arm = [("arm", f"arm joint {i + 1}") for i in range(len(layout["arm"]))]
    return arm + [("object", f"{name} {axis}") for name in layout["objects"] for axis in "xy"]


# ------------------------------------------------------------------ reading the data
def has_replay(root: str | Path) -> bool:
    """Whether the dataset stores replay data (only datasets from `pokevla generate demos` do)."""
    return (Path(root) / "meta/replay").is_dir()


def start_states(root: str | Path) -> dict[tuple[str, int], np.ndarray]:
    """{(suite, task id): (N, D) float64 first sim state of each of the task's N episodes}."""
    root = Path(root)
    info = load_info(root)
    if not has_replay(root):
        raise DatasetError(f"{root} has no meta/replay/ folder; start states are stored only by `pokevla generate demos`")
    if info["total_episodes"] < 1:
        raise DatasetError(f"{root} has no episodes")
    starts: dict[tuple[str, int], list[np.ndarray]] = {}
    for index in range(info["total_episodes"]):
        path = root / f"meta/replay/episode_{index:06d}.npz"
        if not path.exists():
            raise DatasetError(f"{path} is missing; regenerate the dataset (re-running `pokevla generate demos` resumes)")
        try:
            with np.load(path) as z:
                key, state = (str(z["suite"]), int(z["task_id"])), np.asarray(z["sim_states"][0], np.float64)
        except KeyError as e:
            raise DatasetError(f"{path} lacks the entry {e}; it was not written by `pokevla generate demos`") from None
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, IndexError) as e:
            raise DatasetError(f"{path} is damaged ({type(e).__name__}); regenerate the dataset") from None
        starts.setdefault(key, []).append(state)
    return {key: np.stack(states) for key, states in sorted(starts.items())}


# ------------------------------------------------------------------ comparison
def _nearest(queries: np.ndarray, pool: np.ndarray, exclude_self: bool = False) -> np.ndarray:
    """(M, K, C) queries, (N, K, C) pool -> (M,) distance to the nearest pool entry, where the distance
    of two entries is the largest over K of the L2 norm over C."""
    d = np.sqrt(((queries[:, None] - pool[None]) ** 2).sum(-1)).max(-1)
    if exclude_self:
        np.fill_diagonal(d, np.inf)
    return d.min(1)


def task_coverage(starts: np.ndarray, init: np.ndarray, layout: dict) -> dict:
    """Compares (N, D) training starts with (M, D) init states of one task; see the module docstring."""
    size = 1 + layout["nq"] + layout["nv"]
    for what, states in (("training starts", starts), ("official init states", init)):
        if states.shape[1] != size:
            raise DatasetError(f"the {what} have {states.shape[1]} values per state; the recorded layout expects {size} "
                               "(another LIBERO version?); re-record it with pokevla.data.coverage.record_layouts()")
    names = _dim_names(layout)
    groups = np.array([g for g, _ in names])
    data, ref = _dims(starts, layout), _dims(init, layout)
    floor = np.array([MIN_MARGIN[g] for g in groups])
    margin = np.maximum(MARGIN_STDS * ref.std(0), floor)
    lo, hi = data.min(0) - margin, data.max(0) + margin
    inside = (ref >= lo) & (ref <= hi)  # (M, dims)
    dims = [{"name": name, "group": group, "unit": _UNITS[group], "data": [float(a), float(b)],
             "init": [float(c), float(d)], "margin": float(m), "inside": float(f)}
            for (group, name), a, b, c, d, m, f in zip(names, data.min(0), data.max(0), ref.min(0), ref.max(0),
                                                       margin, inside.mean(0))]
    nearest = {}
    for group in ("arm", "object"):
        cols = groups == group
        if not cols.any():
            continue
        # arm: one 7-vector per state; objects: one xy pair per object, the farthest object counts
        shape = (-1, 1, int(cols.sum())) if group == "arm" else (-1, int(cols.sum()) // 2, 2)
        q, pool = ref[:, cols].reshape(shape), data[:, cols].reshape(shape)
        to_data, among = _nearest(q, pool), _nearest(q, q, exclude_self=True)
        nearest[group] = {"unit": _UNITS[group], "median": float(np.median(to_data)), "max": float(to_data.max()),
                          "reference_median": float(np.median(among)), "reference_max": float(among.max()),
                          "all": to_data.tolist()}
    count = int(inside.all(1).sum())
    return {"episodes": len(starts), "init_states": len(init), "inside": count,
            "covered": count >= COVERED_FRACTION * len(init),
            "outside_dims": [d["name"] for d in dims if d["inside"] < 1.0],
            "arm_std": float(data[:, groups == "arm"].std(0).mean()), "init_arm_std": float(ref[:, groups == "arm"].std(0).mean()),
            "dims": dims, "nearest": nearest}


def coverage_report(root: str | Path) -> dict:
    """The comparison for every task in the dataset: {"root", "covered", "verdict", "tasks": [...]}."""
    tasks = []
    for (suite, task_id), starts in start_states(root).items():
        report = task_coverage(starts, np.asarray(suites.init_states(suite, task_id), np.float64),
                               load_layout(suite, task_id))
        tasks.append({"suite": suite, "task_id": task_id, **report})
    covered = all(t["covered"] for t in tasks)
    return {"root": str(root), "covered": covered, "criteria": {
                "margin_stds": MARGIN_STDS, "min_margin": MIN_MARGIN, "covered_fraction": COVERED_FRACTION},
            "verdict": ("covered: " if covered else "NOT covered: ") + _explain(tasks), "tasks": tasks}


def coverage_warning(root: str | Path) -> str | None:
    """One line for the training log when the starts do not cover the evaluation's; None when they do
    or when the dataset stores no replay data (a dataset not made by `pokevla generate demos`)."""
    if not has_replay(root):
        return None
    try:
        report = coverage_report(root)
    except DatasetError as e:  # a damaged replay file must not stop training, which does not read it
        return f"could not check the episode starts against the evaluation init states: {e}"
    if report["covered"]:
        return None
    return "episode starts do not cover the evaluation init states: " + _explain(report["tasks"])


def _explain(tasks: list[dict]) -> str:
    """The verdict's text after "covered: " / "NOT covered: "."""
    bad = sorted((t for t in tasks if not t["covered"]), key=lambda t: t["inside"] / t["init_states"])
    if not bad:
        inside, total = sum(t["inside"] for t in tasks), sum(t["init_states"] for t in tasks)
        text = f"{inside}/{total} init states of {len(tasks)} task(s) lie within the data's per-dimension ranges"
        return text + _nearest_summary(tasks)
    worst = bad[0]
    text = (f"{_name_dims(worst['outside_dims'])} lie outside the data for {worst['init_states'] - worst['inside']}/"
            f"{worst['init_states']} init states of {worst['suite']} task {worst['task_id']}")
    if len(bad) > 1:
        text += f" (and {len(bad) - 1} more of the {len(tasks)} tasks)"
    arm_short = any(t["arm_std"] < 0.5 * t["init_arm_std"] for t in bad)
    hint = (f"regenerate with --init-joint-noise {suites.OFFICIAL_INIT_JOINT_STD}" if arm_short else
            "add episodes (re-run `pokevla generate demos` with a larger --episodes-per-task: it resumes)")
    return f"{text}; {hint}"


def _nearest_summary(tasks: list[dict]) -> str:
    parts = []
    for group, unit, scale, fmt in (("arm", "rad", 1.0, ".3f"), ("object", "mm", 1000.0, ".0f")):
        done = [t["nearest"][group] for t in tasks if group in t["nearest"]]
        if not done:
            continue
        to_data = np.concatenate([d["all"] for d in done]) * scale
        reference = float(np.median([d["reference_median"] for d in done])) * scale
        parts.append(f"{'arm' if group == 'arm' else 'objects'} median {np.median(to_data):{fmt}} {unit}, "
                     f"max {to_data.max():{fmt}} {unit}, between init states {reference:{fmt}} {unit}")
    return f" (nearest training start: {'; '.join(parts)})" if parts else ""


def _name_dims(names: list[str]) -> str:
    """["arm joint 2", "arm joint 5", "bowl_1 x"] -> "arm joints 2, 5 and object bowl_1 x"."""
    joints = [n.rsplit(" ", 1)[1] for n in names if n.startswith("arm joint ")]
    objects = [n for n in names if not n.startswith("arm joint ")]
    parts = []
    if joints:
        parts.append(("arm joint " if len(joints) == 1 else "arm joints ") + ", ".join(joints))
    if objects:
        parts.append(("object " if len(objects) == 1 else "objects ") + ", ".join(objects))
    return " and ".join(parts)
