"""LeRobot v3 datasets on disk: writing episodes, reading frames.

Layout (LeRobot codebase v3.0):
    meta/info.json                          features, fps, counts, path templates
    meta/stats.json                         per-feature statistics (state/action: mean std min max q01..q99)
    meta/tasks.parquet                      one row per task: task_index, indexed by the task string
    meta/episodes/chunk-000/file-000.parquet one row per episode: length, tasks, file and row ranges
    data/chunk-CCC/file-FFF.parquet         frames; image features are {bytes, path} structs of PNG bytes

Each episode is written as its own data file, atomically, then all metadata is rewritten
atomically. The data files are the source of truth: metadata can always be rebuilt from them, which
is how an interrupted writer resumes.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pokevla.common.errors import DatasetError
from pokevla.common.io import atomic_path, read_json, write_json_atomic

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
INFO_FIELDS = ("codebase_version", "robot_type", "total_episodes", "total_frames", "total_tasks", "chunks_size",
               "data_files_size_in_mb", "video_files_size_in_mb", "fps", "splits", "data_path", "video_path", "features")
EPISODES_PATH = "meta/episodes/chunk-000/file-000.parquet"
IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


# ------------------------------------------------------------------ encoding
def encode_png(array: np.ndarray) -> bytes:
    """uint8 (H, W, 3) / (H, W) or uint16 (H, W) -> PNG bytes (fast compression: PNG is for speed here)."""
    from PIL import Image

    if array.dtype != np.uint16:
        array = np.asarray(array, dtype=np.uint8)
    image = Image.fromarray(np.ascontiguousarray(array))  # uint16 -> 16-bit greyscale
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    array = np.asarray(image)
    return array.astype(np.uint16) if image.mode.startswith("I") else array


def read_parquet(path: Path, columns: list[str] | None = None) -> pa.Table:
    """Reads a parquet file, turning a missing or truncated file into a one-line DatasetError."""
    if not path.exists():
        raise DatasetError(f"{path} is missing; the dataset is incomplete (re-run the command that wrote it)")
    try:
        return pq.read_table(path, columns=columns)
    except (pa.ArrowInvalid, OSError) as e:
        raise DatasetError(f"{path} cannot be read ({str(e).splitlines()[0]}); the file is truncated or corrupt") from None
    except KeyError as e:
        raise DatasetError(f"{path} has no column {e}") from None


def _arrow_type(spec: dict) -> pa.DataType:
    if spec["dtype"] == "image":
        return IMAGE_TYPE
    if spec["dtype"] == "video":
        raise DatasetError("video features are not supported; store images as PNG (dtype 'image')")
    scalar = pa.from_numpy_dtype(np.dtype(spec["dtype"]))
    shape = list(spec["shape"])
    if shape == [1]:
        return scalar
    if len(shape) == 1:
        return pa.list_(scalar, shape[0])
    raise DatasetError(f"feature shape {shape} is not supported for dtype {spec['dtype']}")


def arrow_schema(features: dict[str, dict]) -> pa.Schema:
    return pa.schema([(name, _arrow_type(spec)) for name, spec in features.items()])


def episode_table(frames: dict[str, np.ndarray | list], features: dict[str, dict]) -> pa.Table:
    """Builds one episode's table from per-feature columns (images as lists of PNG bytes)."""
    columns = []
    for name, spec in features.items():
        if name not in frames:
            raise DatasetError(f"episode is missing feature {name!r}")
        values = frames[name]
        if spec["dtype"] == "image":
            columns.append(pa.array([{"bytes": b, "path": None} for b in values], type=IMAGE_TYPE))
        elif list(spec["shape"]) == [1]:
            columns.append(pa.array(np.asarray(values).reshape(-1), type=_arrow_type(spec)))
        else:
            flat = np.asarray(values, dtype=spec["dtype"]).reshape(len(values), -1)
            columns.append(pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1)), flat.shape[1]))
    return pa.Table.from_arrays(columns, schema=arrow_schema(features))


# ------------------------------------------------------------------ metadata
@dataclass
class EpisodeInfo:
    episode_index: int
    task: str
    length: int
    file: str  # relative data path
    extra: dict  # generator bookkeeping (suite, task id, seed, ...), kept in the episodes table


def data_path(episode_index: int) -> str:
    return DATA_PATH.format(chunk_index=episode_index // CHUNKS_SIZE, file_index=episode_index % CHUNKS_SIZE)


def quantile_stats(values: np.ndarray) -> dict[str, list[float]]:
    """LeRobot-style statistics of a (N, D) array, with the percentiles training normalises with."""
    values = np.asarray(values, dtype=np.float64)
    q = np.quantile(values, [0.01, 0.10, 0.50, 0.90, 0.99], axis=0)
    return {
        "mean": values.mean(0).tolist(), "std": values.std(0).tolist(),
        "min": values.min(0).tolist(), "max": values.max(0).tolist(), "count": [int(len(values))],
        "q01": q[0].tolist(), "q10": q[1].tolist(), "q50": q[2].tolist(), "q90": q[3].tolist(), "q99": q[4].tolist(),
    }


class DatasetWriter:
    """Appends whole episodes to a LeRobot v3 dataset; reopening an existing root resumes it."""

    def __init__(self, root: str | Path, features: dict[str, dict], fps: int, robot_type: str, extra_info: dict | None = None):
        self.root = Path(root)
        self.features = features
        self.fps = fps
        self.robot_type = robot_type
        self.extra_info = extra_info or {}
        self.episodes: list[EpisodeInfo] = []
        self._numeric: dict[str, list[np.ndarray]] = {"observation.state": [], "action": []}
        self._scan_existing()

    def _scan_existing(self) -> None:
        """Rebuilds the episode list from the data files (metadata may be stale after a crash)."""
        info_path = self.root / "meta/info.json"
        info = read_json(info_path, DatasetError) if info_path.exists() else {}
        if info:
            if info.get("features") != self.features:
                raise DatasetError(f"{self.root} holds a dataset with other features; use a new --out directory")
            # what an earlier run recorded beside the format's own fields (the generator's settings) is kept
            for key, value in info.items():
                if key not in INFO_FIELDS:
                    self.extra_info.setdefault(key, value)
        for path in sorted((self.root / "data").glob("chunk-*/file-*.parquet")):
            chunk, file = int(path.parent.name[6:]), int(path.stem[5:])
            index = chunk * CHUNKS_SIZE + file
            table = read_parquet(path, columns=["task_index", "observation.state", "action"])
            meta = pq.read_schema(path).metadata or {}
            task = meta.get(b"pokevla.task", b"").decode()
            extra = json.loads(meta.get(b"pokevla.extra", b"{}").decode())
            self.episodes.append(EpisodeInfo(index, task, table.num_rows, data_path(index), extra))
            for key in self._numeric:
                column = table[key].combine_chunks()
                self._numeric[key].append(column.flatten().to_numpy().astype(np.float32).reshape(len(column), -1))
        indices = [e.episode_index for e in self.episodes]
        if indices != list(range(len(indices))):
            raise DatasetError(f"{self.root}: episode files are not numbered 0..{len(indices) - 1}; the dataset is damaged")
        # a run killed between an episode's data file and the metadata: the files are the truth
        counts = (len(self.episodes), sum(e.length for e in self.episodes))
        if self.episodes and (info.get("total_episodes"), info.get("total_frames")) != counts:
            self.write_metadata()

    @property
    def tasks(self) -> list[str]:
        """Task strings in order of first appearance (task_index)."""
        seen: dict[str, None] = {}
        for e in self.episodes:
            seen.setdefault(e.task, None)
        return list(seen)

    def add_episode(self, frames: dict[str, np.ndarray | list], task: str, extra: dict | None = None) -> EpisodeInfo:
        """Writes one episode. `frames` holds every non-index feature, one entry per frame."""
        length = len(frames["action"])
        index = len(self.episodes)
        start = sum(e.length for e in self.episodes)
        tasks = self.tasks
        task_index = tasks.index(task) if task in tasks else len(tasks)
        frames = {
            **frames,
            "timestamp": np.arange(length, dtype=np.float32) / self.fps,
            "frame_index": np.arange(length, dtype=np.int64),
            "episode_index": np.full(length, index, dtype=np.int64),
            "index": np.arange(start, start + length, dtype=np.int64),
            "task_index": np.full(length, task_index, dtype=np.int64),
        }
        table = episode_table(frames, self.features)
        table = table.replace_schema_metadata(
            {"pokevla.task": task, "pokevla.extra": json.dumps(extra or {})}
        )
        info = EpisodeInfo(index, task, length, data_path(index), extra or {})
        with atomic_path(self.root / info.file) as tmp:
            pq.write_table(table, tmp, compression="zstd", use_dictionary=False)
        self.episodes.append(info)
        self._numeric["observation.state"].append(np.asarray(frames["observation.state"], np.float32))
        self._numeric["action"].append(np.asarray(frames["action"], np.float32))
        self.write_metadata()
        return info

    def write_metadata(self) -> None:
        """Rewrites tasks, episodes, stats and info (each atomically; info.json last)."""
        tasks = self.tasks
        meta = self.root / "meta"
        tasks_table = pa.table({"task_index": pa.array(range(len(tasks)), pa.int64()),
                                "__index_level_0__": pa.array(tasks, pa.string())})
        tasks_table = tasks_table.replace_schema_metadata({b"pandas": json.dumps({
            "index_columns": ["__index_level_0__"], "column_indexes": [], "columns": [
                {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64", "metadata": None},
                {"name": "task", "field_name": "__index_level_0__", "pandas_type": "unicode", "numpy_type": "object", "metadata": None},
            ], "pandas_version": "2.2.0"}).encode()})
        with atomic_path(meta / "tasks.parquet") as tmp:
            pq.write_table(tasks_table, tmp)

        rows, start = [], 0
        for e in self.episodes:
            chunk, file = e.episode_index // CHUNKS_SIZE, e.episode_index % CHUNKS_SIZE
            rows.append({
                "episode_index": e.episode_index, "tasks": [e.task], "length": e.length,
                "data/chunk_index": chunk, "data/file_index": file,
                "dataset_from_index": start, "dataset_to_index": start + e.length,
                "meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0,
                "pokevla/extra": json.dumps(e.extra),
            })
            start += e.length
        with atomic_path(self.root / EPISODES_PATH) as tmp:
            pq.write_table(pa.Table.from_pylist(rows) if rows else pa.table({}), tmp)

        stats = {}
        for name, chunks in self._numeric.items():
            if chunks:
                stats[name] = quantile_stats(np.concatenate(chunks))
        write_json_atomic(meta / "stats.json", stats)

        info = {
            "codebase_version": CODEBASE_VERSION,
            "robot_type": self.robot_type,
            "total_episodes": len(self.episodes),
            "total_frames": start,
            "total_tasks": len(tasks),
            "chunks_size": CHUNKS_SIZE,
            "data_files_size_in_mb": 100,
            "video_files_size_in_mb": 200,
            "fps": self.fps,
            "splits": {"train": f"0:{len(self.episodes)}"},
            "data_path": DATA_PATH,
            "video_path": None,
            "features": self.features,
            **self.extra_info,
        }
        write_json_atomic(meta / "info.json", info)
