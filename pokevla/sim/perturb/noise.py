"""Noise dimension: ImageNet-C corruptions widened to 10 severities, on the third-person image only.

All functions map uint8 (H, W, 3) to uint8 (H, W, 3), are vectorised (OpenCV filters, NumPy
gathers; no per-pixel Python loops), work with NumPy 2 and at any resolution. Blur sizes are given
for 224 px (ImageNet-C) and scaled with the image width. Parameters interpolate the LIBERO-Plus
ranges linearly over severities 1-10: motion blur (radius, sigma) (5, 2) -> (35, 20) with a random
angle in +-45 deg per frame; gaussian noise sigma 0.04 -> 0.40 (of the [0, 1] range); zoom blur up to
1.06 -> 1.56x; fog (strength, decay) (0.5, 3) -> (5, 1.3); glass blur (sigma, delta, iterations)
(0.5, 1, 3) -> (2.5, 5, 1).
"""

from __future__ import annotations

import cv2
import numpy as np

from pokevla.sim.perturb.base import Perturber
from pokevla.sim.perturb.spec import NoiseSpec

REFERENCE_WIDTH = 224


def _lerp(lo: float, hi: float, severity: int) -> float:
    return lo + (hi - lo) * (severity - 1) / 9


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)


def motion_blur(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    scale = img.shape[1] / REFERENCE_WIDTH
    radius = max(1, int(round(_lerp(5, 35, severity) * scale)))
    sigma = _lerp(2, 20, severity) * scale
    angle = np.deg2rad(rng.uniform(-45, 45))
    # One-sided gaussian streak, as ImageMagick's motion blur used by ImageNet-C.
    steps = np.arange(radius + 1)
    weights = np.exp(-(steps**2) / (2 * sigma**2))
    kernel = np.zeros((2 * radius + 1, 2 * radius + 1), dtype=np.float32)
    cols = np.rint(radius + steps * np.cos(angle)).astype(int)
    rows = np.rint(radius + steps * np.sin(angle)).astype(int)
    np.add.at(kernel, (rows, cols), weights)
    kernel /= kernel.sum()
    return cv2.filter2D(img, -1, kernel, borderType=cv2.BORDER_REFLECT)


def gaussian_noise(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    sigma = _lerp(0.04, 0.40, severity)
    x = img.astype(np.float32) / 255
    return _to_uint8(x + rng.normal(0, sigma, size=img.shape).astype(np.float32))


def _zoom_centre(img: np.ndarray, factor: float) -> np.ndarray:
    h, w = img.shape[:2]
    ch, cw = int(np.ceil(h / factor)), int(np.ceil(w / factor))
    top, left = (h - ch) // 2, (w - cw) // 2
    return cv2.resize(img[top : top + ch, left : left + cw], (w, h), interpolation=cv2.INTER_LINEAR)


def zoom_blur(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    max_zoom = _lerp(1.06, 1.56, severity)
    factors = np.arange(1.0, max_zoom + 1e-9, 0.02)[1:]
    x = img.astype(np.float32)
    acc = x.copy()
    for f in factors:  # a handful of resizes per frame, each vectorised
        acc += _zoom_centre(x, f)
    return np.clip(np.rint(acc / (len(factors) + 1)), 0, 255).astype(np.uint8)


def plasma_fractal(size: int, decay: float, rng: np.random.Generator) -> np.ndarray:
    """Diamond-square height map in [0, 1], (size, size); size a power of two."""
    maparray = np.zeros((size, size), dtype=np.float64)
    step = size
    wibble = 100.0
    while step >= 2:
        half = step // 2
        wibble /= decay
        # squares: centre of each square = mean of its corners + noise
        corners = maparray[0:size:step, 0:size:step]
        square = corners + np.roll(corners, -1, 0) + np.roll(corners, -1, 1) + np.roll(np.roll(corners, -1, 0), -1, 1)
        maparray[half:size:step, half:size:step] = square / 4 + rng.uniform(-wibble, wibble, square.shape)
        # diamonds: edge midpoints = mean of their four neighbours + noise
        sq = maparray[half:size:step, half:size:step]
        c = maparray[0:size:step, 0:size:step]
        ltsum = c + np.roll(c, -1, 0) + sq + np.roll(sq, 1, 1)
        maparray[half:size:step, 0:size:step] = ltsum / 4 + rng.uniform(-wibble, wibble, ltsum.shape)
        ttsum = c + np.roll(c, -1, 1) + sq + np.roll(sq, 1, 0)
        maparray[0:size:step, half:size:step] = ttsum / 4 + rng.uniform(-wibble, wibble, ttsum.shape)
        step = half
    maparray -= maparray.min()
    return maparray / maparray.max()


def fog(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    strength, decay = _lerp(0.5, 5.0, severity), _lerp(3.0, 1.3, severity)
    h, w = img.shape[:2]
    size = 1 << int(np.ceil(np.log2(max(h, w, 2))))  # any resolution, not only <= 256
    x = img.astype(np.float32) / 255
    peak = x.max()
    x = x + strength * plasma_fractal(size, decay, rng)[:h, :w, None].astype(np.float32)
    return _to_uint8(x * peak / (peak + strength))


def glass_blur(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    scale = img.shape[1] / REFERENCE_WIDTH
    sigma = _lerp(0.5, 2.5, severity) * scale
    delta = max(1, int(round(_lerp(1, 5, severity) * scale)))
    iterations = int(round(_lerp(3, 1, severity)))
    h, w = img.shape[:2]
    x = cv2.GaussianBlur(img.astype(np.float32), (0, 0), sigma)
    rows, cols = np.mgrid[0:h, 0:w]
    for _ in range(iterations):
        # Every pixel takes the value of a random neighbour within delta: the vectorised form of
        # ImageNet-C's sequential local pixel swaps.
        dr = rng.integers(-delta, delta + 1, size=(h, w))
        dc = rng.integers(-delta, delta + 1, size=(h, w))
        x = x[np.clip(rows + dr, 0, h - 1), np.clip(cols + dc, 0, w - 1)]
    x = cv2.GaussianBlur(x, (0, 0), sigma)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


CORRUPTIONS = {
    "motion_blur": motion_blur,
    "gaussian_noise": gaussian_noise,
    "zoom_blur": zoom_blur,
    "fog": fog,
    "glass_blur": glass_blur,
}


def corrupt(img: np.ndarray, kind: str, severity: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 (H, W, 3) -> uint8 (H, W, 3)."""
    return CORRUPTIONS[kind](img, severity, rng)


class NoisePerturber(Perturber):
    """Re-seeds at every episode so an episode's frames depend only on (spec seed, episode)."""

    def __init__(self, spec: NoiseSpec, env):
        self.spec = spec
        self.rng = np.random.default_rng(spec.seed)

    def start_episode(self, episode_key: int) -> None:
        self.rng = np.random.default_rng([self.spec.seed, episode_key])

    def primary_image(self, image: np.ndarray) -> np.ndarray:
        return corrupt(image, self.spec.kind, self.spec.severity, self.rng)
