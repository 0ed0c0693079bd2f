"""Knowledge sources: the public conversation formats and our generated folders, and weighted mixes.

A source is one file of records, in one of FORMATS:

    llava       LLaVA-Instruct: a JSON list (or JSON lines) of {"id", "image", "conversations"}; "image"
                is relative to an image folder; text-only items have no "image"; `<image>` at most
                once, in the first human turn
    robopoint   RoboPoint: the same schema; answers that are point lists must lie in [0, 1]
    refspatial  RefSpatial: the same schema; "image" may be a list, an item may carry "depth" (a path
                or a list), up to 15 turns; a reasoning answer ends in `A: [(x, y)]`; points in [0, 1]
    pokevla     a generated folder DIR (DIR/meta.json, DIR/{train,val,heldout}.jsonl, see records.py)

A spec names a source: a generated folder DIR, or a public JSON / JSON-lines file, optionally
prefixed with its format ("robopoint:data/robopoint_1432k.json"); without the prefix the format is
read from the first records (depth or image lists: refspatial; point-list answers: robopoint; else
llava). A public file is training data: it has no val or heldout split.

Every record comes back in records.py's dict format with one key added, "root": the folder (as text)
its image, depth and mask paths resolve against. A refspatial depth folder other than the image
folder is folded into the depth paths (they are rewritten relative to "root").

A mix is "SPEC=WEIGHT,SPEC=WEIGHT" (no commas in paths). A weight is a relative sampling rate per
record: in one epoch each record of a source is drawn WEIGHT times on average, so weights of 1 give
the plain concatenation that LLaVA and Prismatic train on, and doubling a weight doubles that
source's share of the draws per record.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from pokevla.common.errors import ConfigError, DatasetError
from pokevla.common.io import read_json
from pokevla.pretrain.records import IMAGE_TAG, SPLITS, iter_records, record_images
from pokevla.pretrain.scoring import final_answer, find_tuples

FORMATS = ("llava", "robopoint", "refspatial", "pokevla")
PEEK_RECORDS = 20  # records read to detect a format and an image folder
_PEEK_BYTES = 1 << 22
_SEPARATORS = re.compile(r"[\s,]*")  # between the items of a JSON list or lines
_POINT_LIST = re.compile(r"\[\s*\(.*\)\s*\]\s*\.?", re.DOTALL)


@dataclass(frozen=True)
class KnowledgeSource:
    """One file of knowledge records.

    path        the file read: a public JSON / JSON-lines file, or DIR/{split}.jsonl of a generated folder
    format      one of FORMATS
    root        the folder image paths (and a generated folder's mask paths) resolve against
    split       the split of a generated folder; None for a public file (all of it is training data)
    depth_root  the folder refspatial depth paths resolve against (None: `root`)
    """

    path: Path
    format: str
    root: Path
    split: str | None
    depth_root: Path | None = None

    def describe(self) -> str:
        return f"{self.path} ({self.format})"


def open_source(spec: str | Path, split: str = "train", image_root: str | Path | None = None) -> KnowledgeSource:
    """The source `spec` names (see the module docstring); `split` of a generated folder.

    `image_root`: the folder a public file's image paths resolve against; default: the file's folder,
    or its `images/` or `image/` subfolder when the first records' images are found there.
    A missing path, an unknown format or split is a one-line `ConfigError`.
    """
    fmt, path = _split_spec(str(spec))
    if split not in SPLITS:
        raise ConfigError(f"split {split!r} is not one of {', '.join(SPLITS)}")
    if not path.exists():
        raise ConfigError(f"knowledge source {path} does not exist; name a generated folder (with meta.json) "
                          f"or a public JSON / JSON-lines file")
    if path.is_dir() or ((path.parent / "meta.json").is_file() and path.name in {f"{s}.jsonl" for s in SPLITS}):
        return _generated(path, split, fmt)
    if fmt == "pokevla":
        raise ConfigError(f"{path} is a file; a pokevla source is a generated folder with meta.json")
    if split != "train":
        raise ConfigError(f"{path} is a public dataset file, which has no {split} split; evaluate on the "
                          f"val or heldout split of a generated folder")
    head, here = _peek(path), path.parent
    fmt = fmt or _detect_format(head)
    root = (Path(image_root) if image_root is not None
            else _find_root(head, record_images, (here, here / "images", here / "image")))
    depth_root = _find_root(head, _depths, (root, here, here / "depth")) if fmt == "refspatial" else root
    return KnowledgeSource(path, fmt, root, None, None if depth_root == root else depth_root)


def _split_spec(spec: str) -> tuple[str | None, Path]:
    """"FORMAT:PATH" or "PATH" -> (FORMAT or None, PATH)."""
    head, sep, rest = spec.partition(":")
    if sep and head in FORMATS:
        return head, Path(rest)
    if sep and re.fullmatch(r"[a-z]+", head) and not Path(spec).exists():
        raise ConfigError(f"{head!r} in {spec!r} is not a knowledge format; formats: {', '.join(FORMATS)}")
    return None, Path(spec)


def _generated(path: Path, split: str, fmt: str | None) -> KnowledgeSource:
    """A generated folder's split; `path` is the folder or its file of that split."""
    if fmt not in (None, "pokevla"):
        raise ConfigError(f"{path} is a generated knowledge folder (format pokevla), not {fmt}")
    if path.is_file():
        if path.stem != split:  # reading a split other than the one asked for would mix training and test data
            raise ConfigError(f"{path} is the {path.stem} split, but the {split} split is read; name the folder "
                              f"{path.parent}")
        path = path.parent
    if not (path / "meta.json").is_file():
        raise ConfigError(f"{path} has no meta.json: it is not a generated knowledge folder; "
                          f"name one, or a public JSON / JSON-lines file")
    read_json(path / "meta.json", DatasetError)  # a damaged meta.json says so before any record is read
    file = path / f"{split}.jsonl"
    if not file.is_file():
        present = [s for s in SPLITS if (path / f"{s}.jsonl").is_file()]
        raise ConfigError(f"{path} has no {split} split (splits there: {', '.join(present) or 'none'})")
    return KnowledgeSource(file, "pokevla", path, split)


def _peek(path: Path) -> list[dict]:
    """The first PEEK_RECORDS objects of a JSON list or JSON-lines file, read from its first 4 MiB
    only (a public file can be a gigabyte); stops early at anything that does not parse."""
    with open(path, "rb") as f:
        text = f.read(_PEEK_BYTES).decode("utf-8-sig", errors="ignore").lstrip()
    decoder, items = json.JSONDecoder(), []
    at = 1 if text.startswith("[") else 0
    while len(items) < PEEK_RECORDS:
        at = _SEPARATORS.match(text, at).end()
        try:
            item, at = decoder.raw_decode(text, at)
        except json.JSONDecodeError:
            break
        if isinstance(item, dict):
            items.append(item)
    return items


def _detect_format(head: list[dict]) -> str:
    if any("depth" in r or isinstance(r.get("image"), list) for r in head):
        return "refspatial"
    if any(_point_list(answer) is not None for r in head for answer in _answers(r)):
        return "robopoint"
    return "llava"


def _depths(record: dict) -> list:
    """The depth paths a record names (its "depth": a path or a list of them)."""
    depth = record.get("depth")
    return [depth] if isinstance(depth, str) else list(depth) if isinstance(depth, list) else []


def _find_root(head: list[dict], paths: Callable[[dict], list[str]], candidates: Sequence[Path]) -> Path:
    """The first candidate folder holding every file the first record with such paths names
    (default: the first candidate: the records will then be skipped as naming missing files)."""
    # a malformed peeked record names no usable path here; it is skipped when read
    named = next((p for r in head if (p := paths(r)) and all(isinstance(f, str) for f in p)), None)
    if named is None:
        return candidates[0]
    return next((c for c in candidates if all((c / f).is_file() for f in named)), candidates[0])


# --- per-format checks ----------------------------------------------------------------------------


def _answers(record: dict) -> list[str]:
    turns = record.get("conversations")
    if not isinstance(turns, list):
        return []
    return [t["value"] for t in turns[1::2] if isinstance(t, dict) and isinstance(t.get("value"), str)]


def _point_list(answer: str) -> list[tuple[tuple[float, ...], bool]] | None:
    """The tuples of an answer that is a point list, "[(0.461, 0.527), ...]" (after the `A:` of a
    reasoning chain), or None for any other answer."""
    text = final_answer(answer).strip()
    return find_tuples(text) if _POINT_LIST.fullmatch(text) else None


def _point_problem(record: dict) -> str | None:
    """A pointing dataset's answer points (x, y) and boxes (x1, y1, x2, y2) are written normalised,
    with decimals, in [0, 1] (other tuples, e.g. 3-D coordinates of reasoning steps, are not checked)."""
    for turn, answer in enumerate(_answers(record)):
        for values, normalised in _point_list(answer) or []:
            kind = {2: "point", 4: "box"}.get(len(values))
            shown = ", ".join(f"{v:g}" for v in values)
            if kind and not normalised:
                return f"answer {turn + 1} has the {kind} ({shown}) in pixels, not in [0, 1]"
            if kind and not all(0.0 <= v <= 1.0 for v in values):
                return f"answer {turn + 1} has the {kind} ({shown}) outside [0, 1]"
    return None


def _llava_problem(record: dict) -> str | None:
    """LLaVA-Instruct: one image at most, its tag in the first human turn only."""
    if isinstance(record.get("image"), list):
        return "image is a list; a llava record has one image (use the refspatial format for several)"
    turns = record["conversations"]
    if any(IMAGE_TAG in t["value"] for t in turns[1:]):
        return f"{IMAGE_TAG} appears after the first human turn"
    return None


def _refspatial_problem(source: KnowledgeSource) -> Callable[[dict], str | None]:
    depth_root = source.depth_root or source.root

    def check(record: dict) -> str | None:
        depth = record.get("depth")
        if depth is not None and not (isinstance(depth, str) or
                                      (isinstance(depth, list) and all(isinstance(d, str) for d in depth))):
            return "depth is neither a path nor a list of paths"
        missing = next((d for d in _depths(record) if not (depth_root / d).is_file()), None)
        if missing is not None:
            return f"depth {missing} is missing"
        return _point_problem(record)

    return check


def _generated_problem(record: dict) -> str | None:
    if "answer_type" not in record:
        return "a generated record needs family, answer_type and target"
    return _point_problem(record)


def _checks(source: KnowledgeSource) -> Callable[[dict], str | None]:
    if source.format == "llava":
        return _llava_problem
    if source.format == "robopoint":
        return lambda r: _llava_problem(r) or _point_problem(r)
    if source.format == "refspatial":
        return _refspatial_problem(source)
    return _generated_problem


# --- reading --------------------------------------------------------------------------------------


def read_source(source: KnowledgeSource, on_skip: Callable[[str], None] | None = None) -> Iterator[dict]:
    """The valid records of `source`, each with "root" added (see the module docstring).

    A malformed record, one naming a missing image or depth file, or a point outside [0, 1] in a
    pointing dataset's answer, is skipped and reported by `on_skip` in one line naming the file and
    the record; the rest is read on.
    """
    root = str(source.root)
    for record in iter_records(source.path, source.root, on_skip, _checks(source)):
        if source.depth_root is not None and "depth" in record:
            record["depth"] = _relative_depth(record["depth"], source.depth_root, source.root)
        record["root"] = root
        yield record


def _relative_depth(depth: str | list[str], depth_root: Path, root: Path) -> str | list[str]:
    def move(path: str) -> str:
        return os.path.relpath(depth_root / path, root)

    return move(depth) if isinstance(depth, str) else [move(d) for d in depth]


@dataclass
class SourceRecords:
    """A source read into memory: its valid records, and how many it skipped."""

    source: KnowledgeSource
    records: list[dict]
    skipped: int


def load_source(source: KnowledgeSource, on_skip: Callable[[str], None] | None = None) -> SourceRecords:
    skipped = 0

    def skip(message: str) -> None:
        nonlocal skipped
        skipped += 1
        if on_skip is not None:
            on_skip(message)

    return SourceRecords(source, list(read_source(source, skip)), skipped)


# --- mixes ----------------------------------------------------------------------------------------


def parse_mix(spec: str, split: str = "train") -> list[tuple[KnowledgeSource, float]]:
    """"SPEC=WEIGHT,SPEC=WEIGHT" -> [(source, weight), ...]; a bad item is a one-line `ConfigError`."""
    items = [item.strip() for item in spec.split(",")]
    if not spec.strip() or not all(items):
        raise ConfigError(f"knowledge mix {spec!r} has an empty item; write DIR=WEIGHT,DIR2=WEIGHT")
    mix, seen = [], set()
    for item in items:
        path, sep, weight_text = item.rpartition("=")
        if not sep or not path.strip():
            raise ConfigError(f"knowledge mix item {item!r} has no '=': write DIR=WEIGHT, e.g. data/knowledge=1")
        try:
            weight = float(weight_text)
        except ValueError:
            raise ConfigError(f"knowledge mix item {item!r}: weight {weight_text!r} is not a number") from None
        if not (math.isfinite(weight) and weight > 0):
            raise ConfigError(f"knowledge mix item {item!r}: the weight must be a number > 0")
        source = open_source(path.strip(), split)
        if source.path in seen:
            raise ConfigError(f"knowledge mix names {source.path} twice; give it one weight")
        seen.add(source.path)
        mix.append((source, weight))
    return mix


class MixSampler:
    """Which record comes next, one epoch at a time, as (source index, record index) pairs.

    Source i (n_i records, weight w_i) is drawn floor(w_i) times in full plus, for the fraction of
    its weight, a random round(frac(w_i) * n_i) of its records, without repeats within a pass; all
    the draws of an epoch are then shuffled together. Epoch e of seed s is the same on every run.
    """

    def __init__(self, sizes: Sequence[int], weights: Sequence[float], seed: int = 0):
        if len(sizes) != len(weights) or not sizes:
            raise ValueError("one weight per source, and at least one source")
        if any(n <= 0 for n in sizes) or any(not (w > 0) for w in weights):
            raise ValueError("every source needs records and a weight > 0")
        self.sizes, self.weights, self.seed = list(sizes), list(weights), seed
        self.counts = [math.floor(w) * n + round((w - math.floor(w)) * n) for n, w in zip(sizes, weights)]

    def __len__(self) -> int:
        """Draws per epoch."""
        return sum(self.counts)

    def epoch(self, epoch: int) -> np.ndarray:
        """(len(self), 2) int64: [source index, record index] in drawing order."""
        rng = np.random.default_rng([self.seed, epoch])
        parts = []
        for i, (n, w) in enumerate(zip(self.sizes, self.weights)):
            passes = [rng.permutation(n) for _ in range(math.floor(w))]
            passes.append(rng.permutation(n)[:self.counts[i] - math.floor(w) * n])
            indices = np.concatenate(passes)
            parts.append(np.stack([np.full(len(indices), i), indices], axis=1))
        draws = np.concatenate(parts).astype(np.int64)
        return draws[rng.permutation(len(draws))]


class Mixture:
    """The records of a mix in memory, drawn by a `MixSampler`."""

    def __init__(self, mix: list[tuple[KnowledgeSource, float]], seed: int = 0,
                 on_skip: Callable[[str], None] | None = None):
        self.parts = [load_source(source, on_skip) for source, _ in mix]
        self.weights = [weight for _, weight in mix]
        for part in self.parts:
            if not part.records:
                raise DatasetError(f"{part.source.path} has no valid record ({part.skipped} skipped)")
        self.sampler = MixSampler([len(p.records) for p in self.parts], self.weights, seed)

    def __len__(self) -> int:
        return len(self.sampler)

    def epoch(self, epoch: int) -> Iterator[dict]:
        for source, index in self.sampler.epoch(epoch):
            yield self.parts[source].records[index]

    @property
    def skipped(self) -> dict[str, int]:
        """The number of skipped records per source file."""
        return {str(p.source.path): p.skipped for p in self.parts}

    def summary(self) -> str:
        """One line per source: records, skipped records, weight and share of an epoch's draws."""
        lines = []
        for part, weight, count in zip(self.parts, self.weights, self.sampler.counts):
            lines.append(f"{part.source.describe()}: {len(part.records)} records, {part.skipped} skipped, "
                         f"weight {weight:g}, {count / len(self):.1%} of an epoch")
        return "\n".join(lines)
