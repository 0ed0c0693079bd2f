"""Reading LeRobot v3 datasets frame by frame, without TensorFlow or the `datasets` library.

`DatasetReader(root)` loads the metadata and the (non-video) data files with pyarrow and decodes
PNG image features on access. `feature_map` renames dataset features to the names PokeVLA uses
(e.g. {"observation.images.primary": "observation.images.image"} for a community dataset).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pokevla.common.errors import DatasetError
from pokevla.data.features import DEPTH_SCALE
from pokevla.data.lerobot import EPISODES_PATH, decode_png


def load_info(root: str | Path) -> dict:
    path = Path(root) / "meta/info.json"
    if not path.exists():
        raise DatasetError(f"{root} is not a LeRobot dataset: meta/info.json is missing")
    try:
        info = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path} is not valid JSON ({e.msg} at line {e.lineno}); the file is damaged") from None
    version = str(info.get("codebase_version", ""))
    if not version.startswith("v3"):
        raise DatasetError(f"{root} is LeRobot {version or 'of unknown version'}; only v3.x datasets are read (convert with LeRobot's v2.1->v3.0 script)")
    for key in ("features", "fps", "total_episodes", "total_frames", "data_path"):
        if key not in info:
            raise DatasetError(f"{path} lacks the key {key!r}")
    return info


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


class DatasetReader:
    """Random access to the frames of a LeRobot v3 dataset (all data files loaded with pyarrow)."""

    def __init__(self, root: str | Path, feature_map: dict[str, str] | None = None):
        self.root = Path(root)
        self.info = load_info(self.root)
        self.features: dict[str, dict] = self.info["features"]
        self.feature_map = dict(feature_map or {})
        for ours, theirs in self.feature_map.items():
            if theirs not in self.features:
                raise DatasetError(f"--feature-map {ours}={theirs}: the dataset has no feature {theirs!r} (it has {', '.join(self.features)})")
        stats_path = self.root / "meta/stats.json"
        self.stats = json.loads(stats_path.read_text()) if stats_path.exists() else {}
        self.episodes = read_parquet(self.root / EPISODES_PATH).to_pylist()
        tasks = read_parquet(self.root / "meta/tasks.parquet")
        names = tasks.column(tasks.column_names[-1]).to_pylist() if "task" not in tasks.column_names else tasks["task"].to_pylist()
        self.tasks = dict(zip(tasks["task_index"].to_pylist(), names))
        files = sorted({(e["data/chunk_index"], e["data/file_index"]) for e in self.episodes})
        tables = [read_parquet(self.root / self.info["data_path"].format(chunk_index=c, file_index=f)) for c, f in files]
        self.table = pa.concat_tables(tables) if tables else pa.table({})
        if self.table.num_rows != self.info["total_frames"]:
            raise DatasetError(f"{root}: info.json counts {self.info['total_frames']} frames but the data files hold {self.table.num_rows}")
        self._episode_index = np.asarray(self.table["episode_index"]) if self.table.num_rows else np.zeros(0, np.int64)
        self._columns: dict[str, object] = {}
        self._decoded: dict[str, np.ndarray] = {}  # image features decoded once (`cache_images`)

    def __len__(self) -> int:
        return self.table.num_rows

    def has(self, name: str) -> bool:
        return self.feature_map.get(name, name) in self.features

    def require(self, names: list[str]) -> None:
        missing = [n for n in names if not self.has(n)]
        if missing:
            raise DatasetError(
                f"{self.root} lacks the feature(s) {', '.join(missing)}; it has {', '.join(self.features)}. "
                "Map names with --feature-map OURS=THEIRS or switch off the loss that needs them"
            )

    def _column(self, name: str):
        source = self.feature_map.get(name, name)
        if source not in self._columns:
            spec = self.features[source]
            column = self.table[source].combine_chunks()
            if spec["dtype"] == "image":
                self._columns[source] = column.field("bytes")
            elif pa.types.is_fixed_size_list(column.type) or pa.types.is_list(column.type):
                flat = column.flatten().to_numpy(zero_copy_only=False)
                self._columns[source] = np.asarray(flat, dtype=spec["dtype"]).reshape(len(column), -1)
            else:
                self._columns[source] = np.asarray(column.to_numpy(zero_copy_only=False), dtype=spec["dtype"])
        return self._columns[source], self.features[source]

    def cache_images(self, names: list[str], progress: bool = True) -> int:
        """Decodes every frame of the image features in `names` into memory, once; returns the bytes held.

        PNG decoding costs more than a tiny model's training step, so a run that caches its frames is
        compute-bound (and needs no loader processes). Depth stays uint16 in memory (half of float32).
        """
        from tqdm import tqdm

        held = 0
        for name in names:
            column, spec = self._column(name)
            source = self.feature_map.get(name, name)
            if spec["dtype"] != "image" or source in self._decoded:
                continue
            frames = [decode_png(column[i].as_py()) for i in tqdm(range(len(column)), desc=f"decode {name}",
                                                                   unit="frame", leave=False, disable=not progress)]
            self._decoded[source] = np.stack(frames) if frames else np.zeros((0,), np.uint8)
            held += self._decoded[source].nbytes
        return held

    def get(self, name: str, index: int | np.ndarray) -> np.ndarray:
        """One feature of one frame (or of several frames for an index array), decoded."""
        column, spec = self._column(name)
        if spec["dtype"] != "image":
            return column[index]
        if isinstance(index, np.ndarray):
            return np.stack([self.get(name, int(i)) for i in index])
        decoded = self._decoded.get(self.feature_map.get(name, name))
        array = decode_png(column[index].as_py()) if decoded is None else decoded[index]
        encoding = spec.get("info", {}).get("encoding")
        if encoding == "png16":
            return array.astype(np.float32) / spec["info"].get("scale", DEPTH_SCALE)
        return array

    def episode_bounds(self, index: int) -> tuple[int, int]:
        """[start, end) frame rows of the episode that frame `index` belongs to."""
        episode = self.episodes[int(self._episode_index[index])]
        return episode["dataset_from_index"], episode["dataset_to_index"]

    def action_chunk(self, index: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
        """Actions index..index+horizon-1 of the same episode: (horizon, A) and is_pad (horizon,).

        Past the episode's end the last action is repeated and marked as padding.
        """
        _, end = self.episode_bounds(index)
        rows = np.minimum(np.arange(index, index + horizon), end - 1)
        return self.get("action", rows), np.arange(index, index + horizon) >= end

    def task(self, index: int) -> str:
        return self.tasks[int(self.get("task_index", index))]
