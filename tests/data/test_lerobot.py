"""LeRobot v3 writing, reading and validation on synthetic episodes (no simulator)."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from conftest import synthetic_episode
from pokevla.common.errors import DatasetError
from pokevla.data.features import DEPTH_SCALE, demo_features
from pokevla.data.lerobot import DatasetWriter
from pokevla.data.reader import DatasetReader
from pokevla.data.validate import dataset_info, validate_dataset

RES = 16


@pytest.fixture
def dataset(tmp_path, make_dataset):
    tasks = ["pick the bowl", "open the drawer", "pick the bowl"]
    root, episodes = make_dataset(tmp_path / "ds", [5, 3, 4], tasks, resolution=RES)
    return root, episodes, tasks


def test_round_trip(dataset):
    root, episodes, tasks = dataset
    reader = DatasetReader(root)
    assert len(reader) == 12
    assert reader.tasks == {0: "pick the bowl", 1: "open the drawer"}
    row = 5 + 1  # second frame of episode 1
    ep = episodes[1]
    np.testing.assert_array_equal(reader.get("observation.state", row), ep["observation.state"][1])
    np.testing.assert_array_equal(reader.get("action", row), ep["action"][1])
    assert reader.task(row) == "open the drawer"
    image = reader.get("observation.images.primary", row)
    assert image.shape == (RES, RES, 3) and image.dtype == np.uint8
    depth = reader.get("observation.depth.wrist", row)
    assert depth.dtype == np.float32 and depth.shape == (RES, RES)
    assert 0.1 <= depth.min() and depth.max() <= 3000 / DEPTH_SCALE
    assert reader.get("observation.intrinsics.primary", row).shape == (9,)
    # chunks stay inside the episode and mark padding past its end
    chunk, pad = reader.action_chunk(row, 4)
    np.testing.assert_array_equal(chunk[:2], ep["action"][1:3])
    np.testing.assert_array_equal(chunk[2], ep["action"][2])
    assert pad.tolist() == [False, False, True, True]


def test_metadata(dataset):
    root, _, _ = dataset
    info = json.loads((root / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0"
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (3, 12, 2)
    stats = json.loads((root / "meta/stats.json").read_text())
    assert len(stats["action"]["q01"]) == 7 and len(stats["observation.state"]["q99"]) == 8
    summary = dataset_info(root)
    assert summary["episodes_per_task"] == {"pick the bowl": 2, "open the drawer": 1}
    assert validate_dataset(root, decode_all=True) == []


def test_writer_resumes(dataset):
    root, _, _ = dataset
    writer = DatasetWriter(root, demo_features(RES), fps=20, robot_type="panda")
    assert len(writer.episodes) == 3 and writer.episodes[2].extra == {"task_id": 0, "seed": 2}
    writer.add_episode(synthetic_episode(2, 9, RES), task="turn on the stove")
    reader = DatasetReader(root)
    assert len(reader) == 14 and reader.get("index", 13) == 13 and reader.get("episode_index", 13) == 3
    assert validate_dataset(root) == []


def test_metadata_is_reconciled_with_data_files_after_a_kill(tmp_path, make_dataset):
    """A run killed after an episode's data file but before the metadata: validate names the file,
    and reopening the writer (the rerun of the same command) brings the metadata up to date."""
    root, _ = make_dataset(tmp_path / "ds", [5, 3, 4], ["pick the bowl", "open the drawer", "pick the bowl"],
                           resolution=RES, extra={"pokevla": {"generator": {"seed": 0}}})
    meta = {p: p.read_bytes() for p in (root / "meta").rglob("*") if p.is_file()}
    writer = DatasetWriter(root, demo_features(RES), fps=20, robot_type="panda")
    writer.add_episode(synthetic_episode(2, 9, RES), task="turn on the stove")
    for path, data in meta.items():  # the metadata as it was before the 4th episode
        path.write_bytes(data)
    problems = validate_dataset(root)
    assert len(problems) == 1 and "1 data file(s) are not in the metadata (data/chunk-000/file-003.parquet)" in problems[0]
    assert len(DatasetReader(root)) == 12

    assert len(DatasetWriter(root, demo_features(RES), fps=20, robot_type="panda").episodes) == 4
    info = json.loads((root / "meta/info.json").read_text())
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (4, 14, 3)
    assert info["pokevla"] == {"generator": {"seed": 0}}  # the generator's record is kept
    assert len(DatasetReader(root)) == 14 and validate_dataset(root) == []


def test_writer_refuses_other_features(dataset):
    root, _, _ = dataset
    with pytest.raises(DatasetError, match="other features"):
        DatasetWriter(root, demo_features(RES * 2), fps=20, robot_type="panda")


def test_truncated_file_is_reported(dataset):
    root, _, _ = dataset
    path = root / "data/chunk-000/file-001.parquet"
    path.write_bytes(path.read_bytes()[:200])
    problems = validate_dataset(root)
    assert len(problems) == 1 and "file-001.parquet" in problems[0] and "truncated or corrupt" in problems[0]
    with pytest.raises(DatasetError, match="truncated or corrupt"):
        DatasetReader(root)


def test_missing_column_is_reported(dataset):
    root, _, _ = dataset
    path = root / "data/chunk-000/file-002.parquet"
    table = pq.read_table(path)
    pq.write_table(table.drop_columns(["action"]), path)
    problems = validate_dataset(root)
    assert problems == ["data/chunk-000/file-002.parquet lacks column(s) action declared in info.json"]


def test_mismatched_lengths_are_reported(dataset):
    root, _, _ = dataset
    path = root / "data/chunk-000/file-000.parquet"
    table = pq.read_table(path)
    pq.write_table(table.slice(0, 4), path)
    problems = validate_dataset(root)
    assert any("episode 0" in p and "says 5 frames" in p and "holds 4" in p for p in problems)


def test_not_a_dataset(tmp_path):
    with pytest.raises(DatasetError, match="meta/info.json is missing"):
        validate_dataset(tmp_path)
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta/info.json").write_text("{not json")
    with pytest.raises(DatasetError, match="not valid JSON"):
        DatasetReader(tmp_path)


def test_feature_map_and_require(dataset):
    root, _, _ = dataset
    reader = DatasetReader(root, feature_map={"observation.images.front": "observation.images.primary"})
    assert reader.get("observation.images.front", 0).shape == (RES, RES, 3)
    with pytest.raises(DatasetError, match="lacks the feature"):
        reader.require(["observation.images.third"])
    with pytest.raises(DatasetError, match="has no feature"):
        DatasetReader(root, feature_map={"x": "observation.nope"})
