"""Stage-1 image augmentation that keeps every answer true: a random crop for pointing and box
records, and colour jitter for all.

Encoders trained from scratch on a few thousand rendered scenes learn the scenes' look: more steps
on the same scenes raise pointing there and lower it on layouts never seen. A random crop moves and
rescales the objects in the frame, so a point has to come from the object rather than from where such
scenes put it. (Measured in docs/benchmarks.md: on the tiny preset it did not raise pointing on the
libero_goal layouts.) Only records whose answers stay exactly true in a crop are cropped: the families in
`CROPPED_FAMILIES` of generated data (a named object's points and box; questions about other objects,
counts or the whole scene could lose their subject), and only crops holding every answer point and
box whole. Coordinates are then rewritten relative to the crop, in the records' 3-decimal format.
Colour jitter (brightness, contrast, saturation; no hue, which would rename "red mug") applies to
every image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pokevla.pretrain.records import format_box, format_points
from pokevla.pretrain.scoring import find_tuples

CROPPED_FAMILIES = ("point_object", "box_object")
CROP_TRIES = 10  # crops drawn before the record keeps its whole image
ASPECT = (3 / 4, 4 / 3)  # width / height of a crop relative to the image's


@dataclass(frozen=True)
class Augment:
    """crop_scale: the least area fraction of a crop (1: never crop); color: the jitter's amplitude
    (each factor drawn in [1 - color, 1 + color]; 0: none)."""

    crop_scale: float = 1.0
    color: float = 0.0

    @property
    def active(self) -> bool:
        return self.crop_scale < 1.0 or self.color > 0.0

    def may_crop(self, record: dict) -> bool:
        """Whether a crop of `record` (a single-image record of a family in CROPPED_FAMILIES) keeps its
        answers true."""
        return self.crop_scale < 1.0 and record.get("family") in CROPPED_FAMILIES and isinstance(record.get("image"), str)

    def __call__(self, images: list[np.ndarray], turns: list[dict] | None,
                 rng: np.random.Generator) -> tuple[list[np.ndarray], list[dict] | None]:
        """uint8 images (H, W, 3) and, for a record `may_crop` allows, its conversation (None for the
        others) -> augmented copies; `turns` comes back rewritten when the image was cropped, unchanged
        (the same object) otherwise."""
        if turns is not None and len(images) == 1:
            images, turns = self._crop(images[0], turns, rng)
        if self.color > 0.0:
            images = [jitter_colour(image, self.color, rng) for image in images]
        return images, turns

    def _crop(self, image: np.ndarray, turns: list[dict], rng: np.random.Generator) -> tuple[list[np.ndarray], list[dict]]:
        height, width = image.shape[:2]
        answers = [find_tuples(t["value"]) for t in turns[1::2]]
        tuples = [values for answer in answers for values, _ in answer]
        if not tuples or any(len(v) not in (2, 4) for v in tuples):
            return [image], turns
        for _ in range(CROP_TRIES):
            x0, y0, w, h = random_crop(self.crop_scale, rng)  # fractions of the image
            left, top = int(round(x0 * width)), int(round(y0 * height))
            right, bottom = int(round((x0 + w) * width)), int(round((y0 + h) * height))
            # the kept pixels' fractions, so that coordinates map onto exactly those pixels
            x0, y0, w, h = left / width, top / height, (right - left) / width, (bottom - top) / height
            if all(_inside(v, x0, y0, w, h) for v in tuples):
                break
        else:
            return [image], turns
        new_turns = [dict(t) for t in turns]
        for k, answer in enumerate(answers):
            moved = [_move(values, x0, y0, w, h) for values, _ in answer]
            if moved:
                points = [v for v in moved if len(v) == 2]
                new_turns[2 * k + 1]["value"] = format_points(points) if points else format_box(moved[0])
        return [image[top:bottom, left:right]], new_turns


def random_crop(min_area: float, rng: np.random.Generator) -> tuple[float, float, float, float]:
    """A crop (x0, y0, w, h) as fractions of the image: area in [min_area, 1], aspect ratio in ASPECT."""
    area = rng.uniform(min_area, 1.0)
    aspect = float(np.exp(rng.uniform(np.log(ASPECT[0]), np.log(ASPECT[1]))))
    w, h = min(1.0, np.sqrt(area * aspect)), min(1.0, np.sqrt(area / aspect))
    return float(rng.uniform(0, 1 - w)), float(rng.uniform(0, 1 - h)), float(w), float(h)


def _inside(values: tuple[float, ...], x0: float, y0: float, w: float, h: float) -> bool:
    xs, ys = values[0::2], values[1::2]
    return all(x0 <= x < x0 + w for x in xs) and all(y0 <= y < y0 + h for y in ys)


def _move(values: tuple[float, ...], x0: float, y0: float, w: float, h: float) -> tuple[float, ...]:
    return tuple((v - x0) / w if i % 2 == 0 else (v - y0) / h for i, v in enumerate(values))


def jitter_colour(image: np.ndarray, amplitude: float, rng: np.random.Generator) -> np.ndarray:
    """uint8 (H, W, 3) -> uint8 (H, W, 3) with brightness, contrast and saturation each scaled by a
    factor drawn in [1 - amplitude, 1 + amplitude]."""
    brightness, contrast, saturation = rng.uniform(1 - amplitude, 1 + amplitude, size=3)
    out = image.astype(np.float32) * brightness
    out = (out - out.mean()) * contrast + out.mean()
    grey = out @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    out = (out - grey[..., None]) * saturation + grey[..., None]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
