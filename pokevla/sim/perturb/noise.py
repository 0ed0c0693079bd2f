"""Noise dimension: LIBERO-Plus's image corruptions, on the third-person image only.

The five kinds and their parameters per severity 1-10 are the official ones (`envs/env_wrapper.py`
of the LIBERO-Plus code, ImageNet-C functions widened to 10 severities): motion blur (radius, sigma)
with a random angle in +-45 deg per frame, gaussian blur sigma 1-10 px, zoom blur over a table of
zoom factors, fog (strength, decay) on a plasma map, glass blur (sigma, delta, iterations). Official
variant `_noise_C` is kind (C - 1) // 10 at severity (C - 1) % 10 + 1.

All functions map uint8 (H, W, 3) to uint8 (H, W, 3), are vectorised (OpenCV filters, NumPy
gathers; no per-pixel Python loops), work with NumPy 2 and at any resolution. Pixel sizes are the
official ones at 224 px and scale with the image width. Values are cut to uint8 by truncation, as
the official's `astype(np.uint8)` does. At 224 px, tests/robustness/test_official_reference.py checks
each kind against the official code's output.
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
    """[0, 1] floats -> uint8, truncated as the official's `(np.clip(x, 0, 1) * 255).astype(np.uint8)`."""
    return (np.clip(x, 0, 1) * 255).astype(np.uint8)


def _gaussian(x: np.ndarray, sigma: float) -> np.ndarray:
    """skimage.filters.gaussian's defaults: a kernel truncated at 4 sigma, edges extended ('nearest')."""
    size = 2 * int(np.ceil(4 * sigma)) + 1
    return cv2.GaussianBlur(x, (size, size), sigma, borderType=cv2.BORDER_REPLICATE)


def motion_blur(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    radius, sigma = MOTION_BLUR[severity - 1]
    radius, sigma = max(1, int(round(radius * _scale(img)))), sigma * _scale(img)
    angle = np.deg2rad(rng.uniform(-45, 45))
    # ImageMagick's MotionBlurImage, which the official calls: a one-sided gaussian of 2 * radius + 1
    # taps along the angle, tap offsets rounded half down, edges extended.
    steps = np.arange(2 * radius + 1)
    size = 2 * len(steps) - 1
    kernel = np.zeros((size, size))
    rows = len(steps) - 1 + np.ceil(steps * np.sin(angle) - 0.5).astype(int)
    cols = len(steps) - 1 + np.ceil(steps * np.cos(angle) - 0.5).astype(int)
    np.add.at(kernel, (rows, cols), np.exp(-(steps**2) / (2 * sigma**2)))
    x = cv2.filter2D(img.astype(np.float64), -1, kernel / kernel.sum(), borderType=cv2.BORDER_REPLICATE)
    # ImageMagick (Q16) rounds to 16 bits, its 8-bit PNG output then truncates
    return (np.floor(x * 257 + 0.5) // 257).astype(np.uint8)


def gaussian_blur(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    # float64 as skimage's: near-integer values then truncate the same way
    return _to_uint8(_gaussian(img / 255.0, GAUSSIAN_BLUR[severity - 1] * _scale(img)))


def _zoom_axis(n: int, factor: float) -> tuple[float, float]:
    """(scale, offset) of the source coordinate along an axis of n px in the official clipped_zoom:
    the centre ceil(n / factor) px, zoomed by SciPy's order-1 `zoom` (corners aligned, out size
    round(crop * factor)), then trimmed back to n px."""
    crop = int(np.ceil(n / factor))
    out = round(crop * factor)
    scale = (crop - 1) / (out - 1)
    return scale, (n - crop) // 2 + (out - n) // 2 * scale


def zoom_blur(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    stop, step = ZOOM_BLUR[severity - 1]
    factors = np.arange(1.0, stop, step)  # 1.0 included: the official sums the unzoomed image twice
    h, w = img.shape[:2]
    x = img.astype(np.float32) / 255
    acc = np.zeros_like(x)
    for f in factors:  # one bilinear warp per factor, the official zoom's geometry
        (sy, oy), (sx, ox) = _zoom_axis(h, f), _zoom_axis(w, f)
        src = np.array([[sx, 0.0, ox], [0.0, sy, oy]])
        acc += cv2.warpAffine(x, src, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
    return _to_uint8((x + acc) / (len(factors) + 1))


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
    x = img / 255.0
    peak = x.max()
    x = x + strength * plasma_fractal(size, decay, rng)[:h, :w, None]
    return _to_uint8(x * peak / (peak + strength))


def glass_blur(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    sigma, delta, iterations = GLASS_BLUR[severity - 1]
    sigma, delta = sigma * _scale(img), max(1, int(round(delta * _scale(img))))
    h, w = img.shape[:2]
    x = _to_uint8(_gaussian(img / 255.0, sigma))  # the official blurs, then moves uint8 pixels
    rows, cols = np.mgrid[0:h, 0:w]
    for _ in range(iterations):
        # Every pixel takes the value of a random neighbour within delta: the vectorised form of
        # ImageNet-C's sequential local "swaps", which on RGB arrays copy one way (NumPy views alias).
        dr = rng.integers(-delta, delta + 1, size=(h, w))
        dc = rng.integers(-delta, delta + 1, size=(h, w))
        x = x[np.clip(rows + dr, 0, h - 1), np.clip(cols + dc, 0, w - 1)]
    return _to_uint8(_gaussian(x / 255.0, sigma))


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
