"""Object pointing (mask hit) per named object, then presence accuracy per object and truth, for one or
more answer files of the same records.

    python scripts/pointing_per_object.py DATA SPLIT ANSWERS.jsonl.gz [ANSWERS.jsonl.gz ...]

DATA: a generated knowledge folder; SPLIT: the split the answers were scored on; ANSWERS: the answers
files that `pokevla vlm eval --json` wrote (one per model). Prints one row per object: the number of
questions, then each model's mean mask hit, scored by the rule `pokevla vlm eval` uses. Then how far
off the pointing answers land: near the mask is a localisation error, far away a guess, and on
another object asked about in the same image a confusion. Then one row per (object, yes/no truth) of
the presence questions, with each model's accuracy. A model that answers presence from the scene's
look rather than its objects says "no" to what is there.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import json
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from pokevla.pretrain.scoring import decode_png, parse_points, point_score, yesno_correct


def presence_named(question: str) -> str:
    """The object a presence question asks about ("Is there a wine rack in the image?" -> "wine rack")."""
    match = re.search(r"Is there an? ([a-z ]+?) in the image", question)
    return match[1] if match else "?"


def object_named(question: str) -> str:
    """The object a point_object question asks for ("Where is the wine rack?" -> "wine rack")."""
    match = re.search(r"(?:the|to) ([a-z ]+?)(?:\?| in the image|\.)", question.split("\n", 1)[-1])
    return match[1].removeprefix("the ") if match else "?"


MISS_BINS = (0.05, 0.15)  # distance from the mask as a fraction of the image's longer side


def distance_to_mask(points: np.ndarray, mask: np.ndarray) -> float:
    """Mean over `points` (n, 2) pixel (x, y) of the distance to the nearest mask pixel, over the image's
    longer side (0 inside the mask); inf without a point."""
    if len(points) == 0:
        return float("inf")
    inside = np.argwhere(mask)[:, ::-1]  # (m, 2) pixel (x, y)
    gaps = np.linalg.norm(np.floor(points)[:, None] - inside[None], axis=-1).min(axis=1)
    return float(gaps.mean()) / max(mask.shape)


@functools.lru_cache(maxsize=None)
def mask_file(path: Path) -> np.ndarray:
    """The boolean mask (H, W) a record's target PNG holds; each file is read once."""
    return decode_png(path.read_bytes()) > 0


def on_mask(point: np.ndarray, mask: np.ndarray) -> bool:
    """Whether the pixel (x, y) `point` lies in `mask` (H, W); a point off the image does not."""
    x, y = np.floor(point).astype(int)
    return bool(0 <= y < mask.shape[0] and 0 <= x < mask.shape[1] and mask[y, x])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("split")
    parser.add_argument("answers", nargs="+", type=Path)
    args = parser.parse_args()
    records = {}
    with open(args.data / f"{args.split}.jsonl") as f:
        for line in f:
            record = json.loads(line)
            if record["family"] in ("point_object", "presence"):
                records[record["id"]] = record
    # image -> {object: its mask file}, for the far misses that land on another object
    masks_of: dict[str, dict[str, str]] = defaultdict(dict)
    for record in records.values():
        if record["family"] == "point_object":
            masks_of[str(record["image"])][object_named(record["conversations"][0]["value"])] = record["target"]
    pointing: dict[str, list[list[float]]] = defaultdict(lambda: [[] for _ in args.answers])
    distances: list[list[float]] = [[] for _ in args.answers]
    on_another: list[list[bool]] = [[] for _ in args.answers]  # the answer's first point is on another object
    presence: dict[tuple[str, str], list[list[float]]] = defaultdict(lambda: [[] for _ in args.answers])
    for k, path in enumerate(args.answers):
        with gzip.open(path, "rt") as f:
            for line in f:
                answer = json.loads(line)
                record = records.get(answer["id"])
                if record is None:
                    continue
                question = record["conversations"][0]["value"]
                if record["family"] == "presence":
                    truth = record["target"]
                    presence[(presence_named(question), truth)][k].append(float(yesno_correct(answer["answer"], truth)))
                    continue
                mask = mask_file(args.data / record["target"])
                height, width = mask.shape
                points = parse_points(answer["answer"], width, height)
                named = object_named(question)
                pointing[named][k].append(point_score(points, mask))
                distances[k].append(distance_to_mask(np.asarray(points, dtype=float).reshape(-1, 2), mask))
                on_another[k].append(len(points) > 0 and any(
                    on_mask(points[0], mask_file(args.data / target))
                    for other, target in masks_of[str(record["image"])].items() if other != named))
    header = " ".join(f"{p.name[:24]:>24s}" for p in args.answers)
    print(f"{'pointing: object':32s} {'n':>4s} {header}")
    for name, per_model in sorted(pointing.items(), key=lambda item: -len(item[1][0])):
        print(f"{name:32s} {len(per_model[0]):4d} " + " ".join(f"{np.mean(s) if s else float('nan'):24.3f}" for s in per_model))
    print(f"\n{'pointing: distance from the mask':32s} {'n':>4s} {header}")
    near, far = MISS_BINS
    labels = ("inside", f"near (0, {near})", f"off [{near}, {far})", f"far (>= {far}, or no point)")
    # bin 0: inside the mask; then 1 + the bin of the distance
    bins = [np.where(np.asarray(d) == 0, 0, 1 + np.digitize(d, MISS_BINS)) for d in distances]
    for index, label in enumerate(labels):
        print(f"{label:32s} {len(distances[0]):4d} " + " ".join(f"{np.mean(b == index):24.3f}" for b in bins))
    print(f"{'  far, on another object asked':32s} {len(distances[0]):4d} "
          + " ".join(f"{np.mean((b == len(labels) - 1) & np.asarray(o)):24.3f}" for b, o in zip(bins, on_another)))
    print(f"\n{'presence: object (truth)':32s} {'n':>4s} {header}")
    for (name, truth), per_model in sorted(presence.items(), key=lambda item: (item[0][1] != "yes", item[0][0])):
        print(f"{f'{name} ({truth})':32s} {len(per_model[0]):4d} "
              + " ".join(f"{np.mean(s) if s else float('nan'):24.3f}" for s in per_model))

if __name__ == "__main__":
    main()
