"""World-knowledge records: LLaVA conversations with the labels that score them.

A knowledge dataset is a folder:

    DIR/meta.json               generator settings, families with their label sources, counts per split
    DIR/{train,val,heldout}.jsonl   one record per line (LLaVA-Instruct's schema, plus scoring keys)
    DIR/images/...              the PNG images the records name, relative to DIR

A record is what LLaVA, RoboPoint and RefSpatial write,

    {"id": str, "image": str | [str, ...], "conversations": [{"from": "human", "value": "<image>\\nQ"},
                                                            {"from": "gpt", "value": "A"}, ...]}

and, for the records PokeVLA generates, the keys that scoring needs (public readers leave them out):

    "family"        e.g. "point_object" (see `pokevla.pretrain.families`)
    "answer_type"   one of ANSWER_TYPES: how an answer is parsed and scored
    "target"        what a predicted answer is compared with: a mask PNG path for "point" (relative
                    to DIR, a uint8 image, nonzero = inside), a box [x1, y1, x2, y2] in [0, 1] for "box",
                    an integer >= 0 for "count", a distance in centimetres (> 0) for "distance", the
                    points [[x, y], ...] in [0, 1] (at least 2, in order) for "trace", the answer text
                    for "yesno" / "choice" / "text"
    "scene"         the id of the rendered scene (splits never share a scene)

Points are written in [0, 1] with 3 decimals as `[(x, y), ...]`, boxes as `[(x1, y1, x2, y2)]` (the
RoboPoint / RefSpatial convention: a bare 0 or 1 would be read as a pixel by their parsers).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from pokevla.common.errors import DatasetError

IMAGE_TAG = "<image>"
SPLITS = ("train", "val", "heldout")
ANSWER_TYPES = ("point", "box", "yesno", "choice", "count", "distance", "trace", "text")


def format_points(points: Iterable[Sequence[float]]) -> str:
    """[(x, y), ...] in [0, 1] -> "[(0.461, 0.527), (0.498, 0.521)]"."""
    return "[" + ", ".join(f"({x:.3f}, {y:.3f})" for x, y in points) + "]"


def format_box(box: Sequence[float]) -> str:
    """(x1, y1, x2, y2) in [0, 1] -> "[(0.100, 0.200, 0.300, 0.400)]"."""
    return "[(" + ", ".join(f"{v:.3f}" for v in box) + ")]"


def conversation(question: str, answer: str, images: int = 1) -> list[dict[str, str]]:
    """One human turn (the image tags first, as LLaVA puts them) and one gpt turn."""
    tags = "\n".join([IMAGE_TAG] * images)
    return [{"from": "human", "value": f"{tags}\n{question}" if images else question},
            {"from": "gpt", "value": answer}]


def make_record(id: str, image: str | list[str] | None, question: str, answer: str, *, family: str,
                answer_type: str, target: Any, scene: str) -> dict[str, Any]:
    """A generated record; `image` None makes a text-only record (no "image" key, as LLaVA writes it)."""
    if answer_type not in ANSWER_TYPES:
        raise ValueError(f"answer_type {answer_type!r} is not one of {', '.join(ANSWER_TYPES)}")
    images = 0 if image is None else len(image) if isinstance(image, list) else 1
    record: dict[str, Any] = {"id": id} if image is None else {"id": id, "image": image}
    return {**record, "conversations": conversation(question, answer, images),
            "family": family, "answer_type": answer_type, "target": target, "scene": scene}


def record_images(record: dict) -> list[str]:
    """The image paths a record names (none for a text-only record)."""
    image = record.get("image")
    if image is None:
        return []
    return list(image) if isinstance(image, list) else [image]


def record_problem(record: Any, root: Path | None = None) -> str | None:
    """What is wrong with a record, in a few words, or None. `root`: check that its images exist there."""
    if not isinstance(record, dict):
        return "not a JSON object"
    if not isinstance(record.get("id"), (str, int)):
        return "no id"
    turns = record.get("conversations")
    if not isinstance(turns, list) or len(turns) < 2:
        return "no conversation of at least two turns"
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict) or not isinstance(turn.get("value"), str):
            return f"turn {i} has no text value"
        expected = "human" if i % 2 == 0 else "gpt"
        if turn.get("from") != expected:
            return f"turn {i} is from {turn.get('from')!r}, expected {expected!r}"
    images = record.get("image")
    if images is not None and not (isinstance(images, str) or
                                   (isinstance(images, list) and images and all(isinstance(p, str) for p in images))):
        return "image is neither a path nor a list of paths"
    tags = sum(t["value"].count(IMAGE_TAG) for t in turns)
    if tags and tags != len(record_images(record)):
        return f"{tags} {IMAGE_TAG} tag(s) for {len(record_images(record))} image(s)"
    if root is not None:
        for path in record_images(record):
            if not (root / path).is_file():
                return f"image {path} is missing"
    return _scoring_problem(record, root) if "answer_type" in record else None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _scoring_problem(record: dict, root: Path | None) -> str | None:
    """What is wrong with the scoring keys of a generated record, or None."""
    answer_type, target = record["answer_type"], record.get("target")
    if answer_type not in ANSWER_TYPES:
        return f"answer_type {answer_type!r} is not one of {', '.join(ANSWER_TYPES)}"
    if not isinstance(record.get("family"), str):
        return "a record with an answer_type needs a family"
    if answer_type == "point":
        if not isinstance(target, str):
            return "a point target must be the path of a mask image"
        if root is not None and not (root / target).is_file():
            return f"mask {target} is missing"
    elif answer_type == "box":
        if not (isinstance(target, list) and len(target) == 4 and all(_is_number(v) for v in target)):
            return "a box target must be [x1, y1, x2, y2]"
        if not all(0.0 <= v <= 1.0 for v in target):
            return "a box target lies outside [0, 1]"
    elif answer_type == "count":
        if not (isinstance(target, int) and not isinstance(target, bool) and target >= 0):
            return "a count target must be an integer >= 0"
    elif answer_type == "distance":
        if not (_is_number(target) and target > 0):
            return "a distance target must be a number of centimetres > 0"
    elif answer_type == "trace":
        if not (isinstance(target, list) and len(target) >= 2 and all(
                isinstance(p, list) and len(p) == 2 and all(_is_number(v) and 0.0 <= v <= 1.0 for v in p)
                for p in target)):
            return "a trace target must be a list of at least 2 points [x, y] in [0, 1]"
    elif not (isinstance(target, str) and target.strip()):
        return f"a {answer_type} target must be the answer text"
    return None


def iter_records(path: str | Path, root: str | Path | None = None,
                 on_skip: Callable[[str], None] | None = None,
                 check: Callable[[dict], str | None] | None = None) -> Iterator[dict]:
    """The valid records of a JSON-lines file or a JSON list (LLaVA's own layout).

    A malformed record is skipped and reported in one line naming the file, the record's position
    and id, and the problem (`on_skip`, called once per skipped record: count there; default:
    ignored); a file that cannot be read at all is a `DatasetError`.
    `root`: where image paths resolve (default: the file's folder); images are checked to exist.
    `check`: a further test of a record that passed `record_problem` (a format's own rules).
    """
    path = Path(path)
    root = Path(root) if root is not None else path.parent
    try:
        text = path.read_text(encoding="utf-8-sig")  # a BOM some editors write is not part of the JSON
    except OSError as e:
        raise DatasetError(f"cannot read {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise DatasetError(f"{path} is not UTF-8 text; a knowledge file is JSON lines or a JSON list") from None
    if _is_one_object(text):
        raise DatasetError(f"{path} holds one JSON object, not records; a knowledge file is JSON lines or a JSON list")
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as e:
            raise DatasetError(f"{path} is not valid JSON ({e.msg} at line {e.lineno})") from None
        numbered: Iterable[tuple[int, Any]] = ((i, item) for i, item in enumerate(items))
        where = "record"
    else:
        numbered = _json_lines(text)
        where = "line"
    for i, record in numbered:
        problem = "not valid JSON" if record is _UNREADABLE else record_problem(record, root)
        if problem is None and check is not None:
            problem = check(record)
        if problem is None:
            yield record
        elif on_skip is not None:
            named = f" (id {record['id']!r})" if isinstance(record, dict) and "id" in record else ""
            on_skip(f"{path} {where} {i + 1}{named}: {problem}; record skipped")


_UNREADABLE = object()


def _is_one_object(text: str) -> bool:
    """A pretty-printed JSON object (a metadata file given by mistake) rather than JSON lines."""
    text = text.strip()
    if not text.startswith("{") or "\n" not in text:
        return False
    try:
        json.loads(text.split("\n", 1)[0])
        return False  # its first line is a whole record: JSON lines
    except json.JSONDecodeError:
        pass
    try:
        return isinstance(json.loads(text), dict)
    except json.JSONDecodeError:
        return False


def _json_lines(text: str) -> Iterator[tuple[int, Any]]:
    for i, line in enumerate(text.splitlines()):
        if line.strip():
            try:
                yield i, json.loads(line)
            except json.JSONDecodeError:
                yield i, _UNREADABLE
