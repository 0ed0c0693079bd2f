"""Patch naming: an auxiliary stage-1 loss that names the object under each image patch.

A pointing answer teaches the vision encoders where one object is from two or three points. The
masks behind the point_object records say more: every patch of the image that an asked-about object
covers can be labelled with that object's name. A linear head on the vision features
(`PokeVLM.patch_head`) classifies each patch, and its cross-entropy, weighted by `--patch-names W`,
joins the answer loss. The label is the name, not the place, so it is the same wherever the object
stands: recognition that a new layout does not break. The head serves training only; stage 2 and
`vlm ask` / `vlm eval` never read it.

Labels (`patch_labels`): the image's grid of G x G patches (G = `config.grid`); a patch takes the class
of the named object covering the largest share of it if that share is at least `MIN_COVER`, else
IGNORE: a patch no asked-about object covers may hold an object nobody asked about, so it is not
called background. Only generated knowledge records name their masks; public formats add nothing.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from pokevla.pretrain.chat import IGNORE
from pokevla.pretrain.families import POINT_OBJECT_PHRASINGS
from pokevla.pretrain.records import IMAGE_TAG, record_images
from pokevla.pretrain.scoring import read_mask

MIN_COVER = 1 / 3  # least share of a patch an object must cover to name it
_POINTED = re.compile("^(?:" + "|".join(re.escape(p).replace(r"\{\}", "(.+?)") for p in POINT_OBJECT_PHRASINGS)
                      + ")(?: |$)")


def pointed_object(question: str) -> str | None:
    """The object a point_object question names ("Where is the black bowl? ..." -> "black bowl"), or None."""
    match = _POINTED.match(question.replace(IMAGE_TAG, "").strip())
    return None if match is None else next(g for g in match.groups() if g)


@dataclass
class PatchNames:
    """image path -> [(class, mask path)] of every generated point_object record among some records, and
    the names' classes (1..K in sorted name order; 0 is never a label, so a head has K + 1 outputs)."""

    names: list[str]
    masks: dict[Path, list[tuple[int, Path]]]
    _labels: dict[tuple[Path, int], np.ndarray | None] = field(default_factory=dict, repr=False)

    @classmethod
    def from_records(cls, records: Iterable[dict]) -> "PatchNames":
        """`records`: as `formats.read_source` gives them (each with its "root")."""
        found: dict[Path, set[tuple[str, Path]]] = defaultdict(set)
        for record in records:
            if record.get("family") != "point_object" or not isinstance(record.get("target"), str):
                continue
            name = pointed_object(record["conversations"][0]["value"])
            if name is None:
                continue
            root = Path(record["root"])
            found[root / record_images(record)[0]].add((name, root / record["target"]))
        names = sorted({name for pairs in found.values() for name, _ in pairs})
        index = {name: k + 1 for k, name in enumerate(names)}
        return cls(names, {image: sorted((index[n], m) for n, m in pairs) for image, pairs in found.items()})

    def labels(self, image: Path, grid: int) -> np.ndarray | None:
        """(grid * grid,) int64 patch labels of `image` in reading order, or None when no mask names any of it.
        Computed once per image: a frame carries some 27 questions."""
        if (image, grid) not in self._labels:
            self._labels[image, grid] = self._compute(image, grid)
        return self._labels[image, grid]

    def _compute(self, image: Path, grid: int) -> np.ndarray | None:
        pairs = self.masks.get(image)
        if not pairs:
            return None
        return patch_labels([read_mask(path) for _, path in pairs], [k for k, _ in pairs], grid)


def patch_labels(masks: list[np.ndarray], classes: list[int], grid: int) -> np.ndarray:
    """masks: (H, W) bool each, classes: their labels -> (grid * grid,) int64: per patch the class of the
    mask covering the largest share of it, if at least MIN_COVER, else IGNORE."""
    cover = np.stack([_cover(mask, grid) for mask in masks])  # (K, G * G)
    best = cover.argmax(0)
    labels = np.asarray(classes, np.int64)[best]
    labels[cover.max(0) < MIN_COVER] = IGNORE
    return labels


def _cover(mask: np.ndarray, grid: int) -> np.ndarray:
    """(H, W) bool -> (grid * grid,) the share of each patch the mask covers (patch edges at the nearest pixel)."""
    rows = np.linspace(0, mask.shape[0], grid + 1).round().astype(int)
    cols = np.linspace(0, mask.shape[1], grid + 1).round().astype(int)
    return np.array([mask[rows[i]:rows[i + 1], cols[j]:cols[j + 1]].mean()
                     for i in range(grid) for j in range(grid)])
