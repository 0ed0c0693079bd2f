"""Noise dimension: LIBERO-Plus's image corruptions, on the third-person image only.

The five kinds and their parameters per severity 1-10 are the official ones (`envs/env_wrapper.py`
of the LIBERO-Plus code, ImageNet-C functions widened to 10 severities): motion blur (radius, sigma)
with a random angle in +-45 deg per frame, gaussian blur sigma 1-10 px, zoom blur over a table of
zoom factors, fog (strength, decay) on a plasma map, glass blur (sigma, delta, iterations). Official
variant `_noise_C` is kind (C - 1) // 10 at severity (C - 1) % 10 + 1.

All functions map uint8 (H, W, 3) to uint8 (H, W, 3), are vectorised (OpenCV filters, NumPy
gathers; no per-pixel Python loops), work with NumPy 2 and at any resolution. Pixel sizes are the
official ones at 224 px and scale with the image width.
"""

from __future__ import annotations

import cv2
import numpy as np

from pokevla.sim.perturb.base import Perturber
from pokevla.sim.perturb.spec import NoiseSpec

REFERENCE_WIDTH = 224

# The official tables, indexed by severity - 1.
MOTION_BLUR = ((5, 2), (8, 3), (10, 4), (12, 5), (15, 6), (18, 8), (20, 10), (25, 12), (30, 15), (35, 20))  # radius, sigma
GAUSSIAN_BLUR = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10)  # sigma
ZOOM_BLUR = ((1.11, 0.01), (1.16, 0.01), (1.21, 0.02), (1.26, 0.02), (1.31, 0.03),  # np.arange(1, stop, step)
             (1.36, 0.01), (1.41, 0.01), (1.46, 0.02), (1.51, 0.02), (1.56, 0.03))
FOG = ((0.5, 3), (1.0, 2.8), (1.5, 2.5), (2.0, 2.2), (2.5, 2.0), (3.0, 1.8), (3.5, 1.6), (4.0, 1.5), (4.5, 1.4), (5.0, 1.3))
GLASS_BLUR = ((0.5, 1, 3), (0.7, 1, 3), (0.9, 2, 3), (1.0, 2, 2), (1.1, 3, 2),  # sigma, max delta, iterations
              (1.3, 3, 2), (1.5, 4, 2), (1.8, 4, 2), (2.2, 5, 1), (2.5, 5, 1))


def _scale(img: np.ndarray) -> float:
    return img.shape[1] / REFERENCE_WIDTH


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)


def _gaussian(x: np.ndarray, sigma: float) -> np.ndarray:
    """skimage.filters.gaussian's defaults: a kernel truncated at 4 sigma, edges extended ('nearest')."""
    size = 2 * int(np.ceil(4 * sigma)) + 1
    return cv2.GaussianBlur(x, (size, size), sigma, borderType=cv2.BORDER_REPLICATE)


def motion_blur(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    radius, sigma = MOTION_BLUR[severity - 1]
    radius, sigma = max(1, int(round(radius * _scale(img)))), sigma * _scale(img)
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


def gaussian_blur(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    return _to_uint8(_gaussian(img.astype(np.float32) / 255, GAUSSIAN_BLUR[severity - 1] * _scale(img)))


def _zoom_centre(img: np.ndarray, factor: float) -> np.ndarray:
    h, w = img.shape[:2]
    ch, cw = int(np.ceil(h / factor)), int(np.ceil(w / factor))
    top, left = (h - ch) // 2, (w - cw) // 2
    return cv2.resize(img[top : top + ch, left : left + cw], (w, h), interpolation=cv2.INTER_LINEAR)


def zoom_blur(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    stop, step = ZOOM_BLUR[severity - 1]
    factors = np.arange(1.0, stop, step)  # 1.0 included: the official sums the unzoomed image twice
    x = img.astype(np.float32)
    acc = x.copy()
    for f in factors:  # a handful of resizes per frame, each vectorised
        acc += _zoom_centre(x, f)
    return np.clip(np.rint(acc / (len(factors) + 1)), 0, 255).astype(np.uint8)


def plasma_fractal(size: int, decay: float, rng: np.random.Generator) -> np.ndarray:
    """Diamond-square height map in [0, 1], (size, size); size a power of two.

    As the official, a level's noise is wibble * U(-wibble, wibble): its amplitude falls by decay^2 per
    level, which sets how smooth the fog is."""
    maparray = np.zeros((size, size), dtype=np.float64)
    step = size
    wibble = 100.0
    while step >= 2:
        half = step // 2
        wibble /= decay
        # squares: centre of each square = mean of its corners + noise
        corners = maparray[0:size:step, 0:size:step]
        square = corners + np.roll(corners, -1, 0) + np.roll(corners, -1, 1) + np.roll(np.roll(corners, -1, 0), -1, 1)
        maparray[half:size:step, half:size:step] = square / 4 + wibble * rng.uniform(-wibble, wibble, square.shape)
        # diamonds: edge midpoints = mean of their four neighbours + noise
        sq = maparray[half:size:step, half:size:step]
        c = maparray[0:size:step, 0:size:step]
        ltsum = c + np.roll(c, -1, 0) + sq + np.roll(sq, 1, 1)
        maparray[half:size:step, 0:size:step] = ltsum / 4 + wibble * rng.uniform(-wibble, wibble, ltsum.shape)
        ttsum = c + np.roll(c, -1, 1) + sq + np.roll(sq, 1, 0)
        maparray[0:size:step, half:size:step] = ttsum / 4 + wibble * rng.uniform(-wibble, wibble, ttsum.shape)
        step = half
    maparray -= maparray.min()
    return maparray / maparray.max()


def fog(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    strength, decay = FOG[severity - 1]
    h, w = img.shape[:2]
    size = 1 << int(np.ceil(np.log2(max(h, w, 2))))  # any resolution, not only <= 256
    x = img.astype(np.float32) / 255
    peak = x.max()
    x = x + strength * plasma_fractal(size, decay, rng)[:h, :w, None].astype(np.float32)
    return _to_uint8(x * peak / (peak + strength))


def glass_blur(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    sigma, delta, iterations = GLASS_BLUR[severity - 1]
    sigma, delta = sigma * _scale(img), max(1, int(round(delta * _scale(img))))
    h, w = img.shape[:2]
    x = np.rint(_gaussian(img.astype(np.float32), sigma))  # the official blurs, then swaps uint8 pixels
    rows, cols = np.mgrid[0:h, 0:w]
    for _ in range(iterations):
        # Every pixel takes the value of a random neighbour within delta: the vectorised form of
        # ImageNet-C's sequential local pixel swaps.
        dr = rng.integers(-delta, delta + 1, size=(h, w))
        dc = rng.integers(-delta, delta + 1, size=(h, w))
        x = x[np.clip(rows + dr, 0, h - 1), np.clip(cols + dc, 0, w - 1)]
    return _to_uint8(_gaussian(x / 255, sigma))


CORRUPTIONS = {
    "motion_blur": motion_blur,
    "gaussian_blur": gaussian_blur,
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
