"""Coverage of the official init states by a dataset's episode starts, on the real init-state files."""

import json
import os

import numpy as np
import pytest

from pokevla.cli import main
from pokevla.common.errors import DatasetError
from pokevla.data import coverage
from pokevla.sim import suites

TASKS = (("libero_10", 5), ("libero_object", 0))  # in the order reports list them


def write_dataset(root, starts: dict) -> str:
    """Only what coverage reads: meta/info.json and one replay file per episode, {(suite, task): (N, D)}."""
    (root / "meta/replay").mkdir(parents=True)
    index = 0
    for (suite, task_id), states in starts.items():
        for state in states:
            np.savez_compressed(root / f"meta/replay/episode_{index:06d}.npz", sim_states=np.stack([state, state]),
                                suite=np.array(suite), task_id=np.array(task_id), seed=np.array(index))
            index += 1
    info = {"codebase_version": "v3.0", "features": {}, "fps": 20, "total_episodes": index,
            "total_frames": 2 * index, "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"}
    (root / "meta/info.json").write_text(json.dumps(info))
    return str(root)


def sampled_starts(suite: str, task_id: int, n: int, joint_std: float, seed: int = 0) -> np.ndarray:
    """(n, D) starts: arm joints around the init states' mean with `joint_std`, objects anywhere in their xy range."""
    rng = np.random.default_rng(seed)
    init = np.asarray(suites.init_states(suite, task_id))
    layout = coverage.load_layout(suite, task_id)
    starts = init[rng.integers(0, len(init), n)].copy()
    starts[:, 1:8] = init[:, 1:8].mean(0) + rng.normal(0.0, joint_std, (n, 7))
    for adr in layout["objects"].values():
        cols = slice(1 + adr, 3 + adr)
        starts[:, cols] = rng.uniform(init[:, cols].min(0), init[:, cols].max(0), (n, 2))
    return starts


@pytest.fixture
def spread(tmp_path):
    return write_dataset(tmp_path / "spread", {t: sampled_starts(*t, 50, suites.OFFICIAL_INIT_JOINT_STD) for t in TASKS})


@pytest.fixture
def one_pose(tmp_path):
    return write_dataset(tmp_path / "one_pose", {t: sampled_starts(*t, 50, 0.0) for t in TASKS})


def test_starts_with_the_official_spread_cover_the_init_states(spread, capsys):
    report = coverage.coverage_report(spread)
    assert report["covered"] and [(t["suite"], t["task_id"]) for t in report["tasks"]] == list(TASKS)
    assert report["verdict"].startswith("covered: ") and "init states of 2 task(s)" in report["verdict"]
    arm = report["tasks"][0]["nearest"]["arm"]
    assert arm["median"] < 2 * arm["reference_median"]
    assert coverage.coverage_warning(spread) is None
    assert main(["dataset", "coverage", spread]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == report["verdict"]


def test_starts_from_one_pose_are_not_covered_and_the_arm_joints_are_named(one_pose, tmp_path, capsys):
    report = coverage.coverage_report(one_pose)
    assert not report["covered"]
    assert report["verdict"].startswith("NOT covered: arm joints 1, 2, 3, 4, 5, 6, 7 lie outside the data for ")
    assert report["verdict"].endswith("; regenerate with --init-joint-noise 0.02")
    assert all(t["inside"] < 10 for t in report["tasks"])
    assert all(d.startswith("arm joint") for t in report["tasks"] for d in t["outside_dims"])  # objects span theirs
    warning = coverage.coverage_warning(one_pose)
    assert warning.startswith("episode starts do not cover the evaluation init states: arm joints 1, 2")
    assert main(["dataset", "coverage", one_pose, "--json", str(tmp_path / "r.json")]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == report["verdict"]
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["verdict"] == report["verdict"] and len(saved["tasks"][1]["dims"]) == 7 + 2 * 7


def test_an_object_outside_its_init_range_is_named(tmp_path):
    starts = sampled_starts("libero_10", 5, 50, suites.OFFICIAL_INIT_JOINT_STD)
    adr = coverage.load_layout("libero_10", 5)["objects"]["black_book_1"]
    starts[:, 1 + adr] = starts[:, 1 + adr].min()  # the book's x never varies
    report = coverage.coverage_report(write_dataset(tmp_path / "d", {("libero_10", 5): starts}))
    assert report["verdict"].startswith("NOT covered: object black_book_1 x lie outside")
    assert "larger --episodes-per-task" in report["verdict"]


def test_a_foreign_dataset_gets_no_warning_and_a_clear_error(tmp_path, capsys):
    root = write_dataset(tmp_path / "foreign", {})
    (tmp_path / "foreign/meta/replay").rmdir()
    assert coverage.coverage_warning(root) is None
    assert main(["dataset", "coverage", root]) == 2
    assert "no meta/replay/ folder" in capsys.readouterr().err


@pytest.mark.parametrize("damage, message", [("garble", "is damaged ("), ("delete", "is missing")])
def test_damaged_replay_files_are_one_line_errors(one_pose, damage, message, capsys):
    path = f"{one_pose}/meta/replay/episode_000003.npz"
    if damage == "garble":
        with open(path, "r+b") as f:
            f.write(b"not a zip file")
    else:
        os.remove(path)
    assert main(["dataset", "coverage", one_pose]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert coverage.coverage_warning(one_pose).startswith("could not check the episode starts")


def test_states_of_another_size_are_refused(tmp_path):
    starts = sampled_starts("libero_object", 0, 5, 0.02)[:, :-3]
    with pytest.raises(DatasetError, match="training starts have 107 values per state; the recorded layout expects 110"):
        coverage.coverage_report(write_dataset(tmp_path / "d", {("libero_object", 0): starts}))


def test_recorded_layouts_fit_the_official_init_states():
    for suite in suites.SUITES:
        for task in suites.list_tasks(suite):
            layout = coverage.load_layout(suite, task.task_id)
            assert suites.init_states(suite, task.task_id).shape[1] == 1 + layout["nq"] + layout["nv"]
            assert layout["arm"] == list(range(7))


@pytest.mark.sim
def test_recorded_layout_matches_a_freshly_built_env():
    from pokevla.sim.env import EnvConfig, LiberoEnv

    with LiberoEnv(EnvConfig("libero_10", 5, render=False)) as env:
        layout = coverage._env_layout(env)
        names = [env.sim.model.joint_id2name(j) for j in range(9)]
    assert layout == coverage.load_layout("libero_10", 5)
    assert names == [f"robot0_joint{i}" for i in range(1, 8)] + ["gripper0_finger_joint1", "gripper0_finger_joint2"]
