"""Reading LeRobot v3 datasets frame by frame, without TensorFlow or the `datasets` library.

`DatasetReader(root)` loads the metadata and the (non-video) data files with pyarrow and decodes
PNG image features on access. `feature_map` renames dataset features to the names PokeVLA uses
(e.g. {"observation.images.primary": "observation.images.image"} for a community dataset).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from pokevla.common.errors import DatasetError
from pokevla.common.io import read_json
from pokevla.data.features import DEPTH_SCALE
from pokevla.data.lerobot import EPISODES_PATH, decode_png, read_parquet


def load_info(root: str | Path) -> dict:
    path = Path(root) / "meta/info.json"
    if not path.exists():
        raise DatasetError(f"{root} is not a LeRobot dataset: meta/info.json is missing")
    info = read_json(path, DatasetError)
    version = str(info.get("codebase_version", ""))
    if not version.startswith("v3"):
        raise DatasetError(f"{root} is LeRobot {version or 'of unknown version'}; only v3.x datasets are read (convert with LeRobot's v2.1->v3.0 script)")
    for key in ("features", "fps", "total_episodes", "total_frames", "data_path"):
        if key not in info:
            raise DatasetError(f"{path} lacks the key {key!r}")
    features = info["features"]
    if not isinstance(features, dict) or not all(isinstance(f, dict) and {"dtype", "shape"} <= f.keys() for f in features.values()):
        raise DatasetError(f"{path}: features must map each name to an object with its dtype and shape")
    return info


def task_names(root: Path) -> dict[int, str]:
    """task_index -> instruction, from meta/tasks.parquet (LeRobot keeps the text in its index column,
    written as "task" by pandas or as the last column)."""
    tasks = read_parquet(root / "meta/tasks.parquet")
    names = tasks.column(tasks.column_names[-1]).to_pylist() if "task" not in tasks.column_names else tasks["task"].to_pylist()
    return dict(zip(tasks["task_index"].to_pylist(), names))


def check_columns(table: pa.Table, features: dict[str, dict], path: Path) -> None:
    """Every feature info.json declares is a column of `table` of a type that can hold it (lenient
    about list layouts, which differ between LeRobot writers); a DatasetError names the file."""
    for name, spec in features.items():
        if spec["dtype"] == "video":  # stored in video files, not in the data files
            continue
        if name not in table.column_names:
            raise DatasetError(f"{path} lacks the column {name} that meta/info.json declares; the file is damaged")
        tp = table.schema.field(name).type
        if spec["dtype"] == "image":
            fits = pa.types.is_struct(tp) and tp.get_field_index("bytes") >= 0
        else:
            if pa.types.is_fixed_size_list(tp) or pa.types.is_list(tp):
                tp = tp.value_type
            fits = pa.types.is_integer(tp) or pa.types.is_floating(tp) or pa.types.is_boolean(tp)
        if not fits:
            raise DatasetError(f"{path}: column {name} holds {tp}, not the {spec['dtype']} {list(spec['shape'])} "
                               "that meta/info.json declares; the file is damaged")


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
        self.stats = read_json(stats_path, DatasetError) if stats_path.exists() else {}
        self.episodes = read_parquet(self.root / EPISODES_PATH).to_pylist()
        self.tasks = task_names(self.root)
        files = sorted({(e["data/chunk_index"], e["data/file_index"]) for e in self.episodes})
        tables = []
        for c, f in files:
            path = self.root / self.info["data_path"].format(chunk_index=c, file_index=f)
            tables.append(read_parquet(path))
            check_columns(tables[-1], self.features, path)
        try:
            self.table = pa.concat_tables(tables) if tables else pa.table({})
        except pa.ArrowInvalid:
            raise DatasetError(f"{root}: the data files store their columns in different types; "
                               f"`pokevla dataset validate {root}` names the odd ones") from None
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
            # closed (and cleared) on a damaged frame too, so its one-line error starts a line of its own
            with tqdm(range(len(column)), desc=f"decode {name}", unit="frame", leave=False, disable=not progress) as bar:
                frames = [self._decode(source, column, i) for i in bar]
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
        source = self.feature_map.get(name, name)
        decoded = self._decoded.get(source)
        array = self._decode(source, column, index) if decoded is None else decoded[index]
        encoding = spec.get("info", {}).get("encoding")
        if encoding == "png16":
            return array.astype(np.float32) / spec["info"].get("scale", DEPTH_SCALE)
        return array

    def _decode(self, source: str, column, index: int) -> np.ndarray:
        try:
            return decode_png(column[index].as_py())
        except Exception as e:  # any decoder failure means a damaged image
            episode = int(self._episode_index[index])
            raise DatasetError(f"{self.root}: {source} of frame {index} (episode {episode}) does not decode "
                               f"({type(e).__name__}); the data file is damaged: find every damaged frame with "
                               f"`pokevla dataset validate {self.root} --all-frames`") from None

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
