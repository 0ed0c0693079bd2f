"""`pokevla dataset info` and `pokevla dataset validate`: what a dataset holds, and whether it is whole."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa

from pokevla.common.errors import DatasetError
from pokevla.common.io import read_json
from pokevla.data.closing import closing_report
from pokevla.data.lerobot import EPISODES_PATH, arrow_schema, decode_png, read_parquet
from pokevla.data.reader import load_info, task_names

EPISODE_COLUMNS = ("episode_index", "length", "data/chunk_index", "data/file_index", "dataset_from_index", "dataset_to_index")


def dataset_info(root: str | Path) -> dict:
    """Summary of a dataset from its metadata (no frame is decoded)."""
    root = Path(root)
    info = load_info(root)
    episodes = read_parquet(root / EPISODES_PATH).to_pylist()
    lengths = [e["length"] for e in episodes]
    per_task = Counter(t for e in episodes for t in e.get("tasks", []))
    size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
    return {
        "root": str(root), "codebase_version": info["codebase_version"], "robot_type": info.get("robot_type"),
        "fps": info["fps"], "episodes": info["total_episodes"], "frames": info["total_frames"],
        "tasks": info.get("total_tasks"), "episode_length": {"mean": float(np.mean(lengths)) if lengths else 0.0,
                                                              "min": min(lengths, default=0), "max": max(lengths, default=0)},
        "episodes_per_task": dict(per_task), "size_mb": round(size / 2**20, 1),
        "features": {k: {"dtype": v["dtype"], "shape": v["shape"]} for k, v in info["features"].items()},
        "generator": info.get("pokevla", {}).get("generator"),
        "closing": _closing(root, info, episodes),
    }


def _closing(root: Path, info: dict, episodes: list[dict]) -> dict | None:
    """`closing_report` from the state and action columns alone (no image is read)."""
    columns = ["observation.state", "action", "episode_index", "task_index"]
    if not set(columns) <= info["features"].keys() or not episodes:
        return None
    files = sorted({(e["data/chunk_index"], e["data/file_index"]) for e in episodes})
    table = pa.concat_tables([read_parquet(root / info["data_path"].format(chunk_index=c, file_index=f), columns)
                              for c, f in files])
    state, action = (np.stack(table[name].to_numpy(zero_copy_only=False)) for name in ("observation.state", "action"))
    return closing_report(state, action, table["episode_index"].to_numpy(), table["task_index"].to_numpy(), task_names(root))


def validate_dataset(root: str | Path, decode_all: bool = False) -> list[str]:
    """Checks a dataset end to end; returns the problems found (empty when it is whole).

    Every data file is opened and its schema compared with info.json; row counts, episode ranges and
    global indices must agree; stats must cover state and action with finite numbers; the first and
    last frame of every episode and evenly spaced ones between are decoded (every frame with decode_all).
    """
    root = Path(root)
    problems: list[str] = []
    info = load_info(root)
    features = info["features"]
    try:
        expected = arrow_schema(features)
    except DatasetError as e:
        return [str(e)]
    episodes = read_parquet(root / EPISODES_PATH)
    missing = [c for c in EPISODE_COLUMNS if c not in episodes.column_names]
    if missing:
        return [f"{EPISODES_PATH} lacks column(s) {', '.join(missing)}"]
    episodes = episodes.to_pylist()
    if len(episodes) != info["total_episodes"]:
        problems.append(f"info.json counts {info['total_episodes']} episodes, {EPISODES_PATH} lists {len(episodes)}")
    tasks = read_parquet(root / "meta/tasks.parquet")
    if "task_index" not in tasks.column_names:
        problems.append("meta/tasks.parquet lacks the column task_index")

    next_index = 0
    for ep in episodes:
        if ep["dataset_to_index"] - ep["dataset_from_index"] != ep["length"] or ep["dataset_from_index"] != next_index:
            problems.append(f"episode {ep['episode_index']}: frame range {ep['dataset_from_index']}:{ep['dataset_to_index']} does not follow the previous episode")
        next_index = ep["dataset_to_index"]
        name = info["data_path"].format(chunk_index=ep["data/chunk_index"], file_index=ep["data/file_index"])
        try:
            table = read_parquet(root / name)
        except DatasetError as e:
            problems.append(str(e))
            continue
        absent = [f.name for f in expected if f.name not in table.column_names]
        if absent:
            problems.append(f"{name} lacks column(s) {', '.join(absent)} declared in info.json")
            continue
        wrong = [f.name for f in expected if not table.schema.field(f.name).type.equals(f.type)]
        if wrong:
            problems.append(f"{name}: column(s) {', '.join(wrong)} do not have the dtype/shape declared in info.json")
            continue
        undeclared = [c for c in table.column_names if c not in features]
        if undeclared:
            problems.append(f"{name}: column(s) {', '.join(undeclared)} are not declared in info.json's features")
        rows = np.asarray(table["episode_index"]) == ep["episode_index"]
        count = int(rows.sum())
        if count != ep["length"]:
            problems.append(f"episode {ep['episode_index']}: {EPISODES_PATH} says {ep['length']} frames, {name} holds {count}")
            continue
        index = np.asarray(table["index"])[rows]
        if not np.array_equal(index, np.arange(ep["dataset_from_index"], ep["dataset_from_index"] + count)):
            problems.append(f"episode {ep['episode_index']}: global frame indices in {name} are not contiguous")
        problems += _check_images(table.filter(pa.array(rows)), features, name, decode_all)
    if next_index != info["total_frames"]:
        problems.append(f"info.json counts {info['total_frames']} frames, the episodes cover {next_index}")
    listed = {info["data_path"].format(chunk_index=ep["data/chunk_index"], file_index=ep["data/file_index"])
              for ep in episodes}
    unlisted = sorted(str(f.relative_to(root)) for f in (root / "data").glob("chunk-*/*.parquet")
                      if str(f.relative_to(root)) not in listed)
    if unlisted:
        problems.append(f"{len(unlisted)} data file(s) are not in the metadata ({', '.join(unlisted[:3])}"
                        f"{', ...' if len(unlisted) > 3 else ''}): a run stopped before writing it; rerun the same "
                        "generate command to reconcile, or delete the file(s)")
    problems += _check_stats(root, features)
    return problems


SAMPLED_FRAMES = 8  # decoded per episode without decode_all: its ends and evenly spaced frames between


def _check_images(table: pa.Table, features: dict, name: str, decode_all: bool) -> list[str]:
    problems = []
    n = table.num_rows
    rows = range(n) if decode_all else sorted({int(r) for r in np.linspace(0, n - 1, min(n, SAMPLED_FRAMES))})
    for key, spec in features.items():
        if spec["dtype"] != "image":
            continue
        column = table[key].combine_chunks().field("bytes")
        for r in rows:
            try:
                array = decode_png(column[r].as_py())
            except Exception as e:  # any decoder failure means a damaged image
                problems.append(f"{name}: {key} of row {r} does not decode ({type(e).__name__})")
                break
            h, w = spec["shape"][:2]
            if array.shape[:2] != (h, w):
                problems.append(f"{name}: {key} is {array.shape[:2]}, info.json declares {(h, w)}")
                break
    return problems


def _check_stats(root: Path, features: dict) -> list[str]:
    path = root / "meta/stats.json"
    if not path.exists():
        return ["meta/stats.json is missing; normalisation statistics cannot be read"]
    try:
        stats = read_json(path, DatasetError)
    except DatasetError as e:
        return [str(e)]
    problems = []
    for key in ("observation.state", "action"):
        if key not in features:
            problems.append(f"info.json does not declare the feature {key}")
            continue
        dim = features[key]["shape"][0]
        for stat in ("mean", "std", "q01", "q99"):
            entry = stats.get(key)
            values = entry.get(stat) if isinstance(entry, dict) else None
            if not isinstance(values, list) or len(values) != dim:
                problems.append(f"meta/stats.json: {key}.{stat} is missing or not of length {dim}")
            elif not all(isinstance(v, (int, float)) and np.isfinite(v) for v in values):
                problems.append(f"meta/stats.json: {key}.{stat} holds values that are not finite numbers (NaN, infinity "
                                "or text); normalising with them would make every input NaN")
    return problems
