"""Draws the concrete spec of a (dimension, level) variant from a seeded generator.

Our levels are parametric (the original's are empirical: how many of four models failed), chosen so
that level 1-5 spans each published range. Sub-types are drawn with the original's proportions.
Layout variants also need the simulator (`pokevla.robustness.build` validates and re-draws them).
"""

from __future__ import annotations

import numpy as np

from pokevla.sim.perturb import background, language, robot
from pokevla.sim.perturb.spec import (
    BackgroundSpec,
    CameraSpec,
    LanguageSpec,
    LightSpec,
    NoiseSpec,
    Perturbation,
    RobotSpec,
)

def _pick(rng: np.random.Generator, weights: dict[str, float]) -> str:
    names = list(weights)
    p = np.array([weights[n] for n in names], dtype=float)
    return str(rng.choice(names, p=p / p.sum()))


def _sign(rng: np.random.Generator) -> float:
    return float(rng.choice([-1.0, 1.0]))


def camera(level: int, rng: np.random.Generator) -> CameraSpec:
    # Proportions of the shipped set: 992 orbit, 313 distance, 294 orientation.
    kind = _pick(rng, {"orbit": 992, "distance": 313, "orientation": 294})
    if kind == "orbit":  # |azimuth| in (15(L-1), 15L] degrees, elevation 0 or 15
        az = _sign(rng) * float(rng.integers(15 * (level - 1) + 1, 15 * level + 1))
        return CameraSpec(level, kind, azimuth_deg=az, elevation_deg=float(rng.choice([0.0, 15.0])))
    if kind == "distance":  # 1.15-2.0 in five bands
        lo = 1.15 + 0.17 * (level - 1)
        return CameraSpec(level, kind, distance_scale=round(float(rng.uniform(lo, lo + 0.17)), 3))
    big = _sign(rng) * 2.0 * level  # the larger of |yaw|, |pitch| is 2L degrees
    small = _sign(rng) * 2.0 * float(rng.integers(1, level + 1))
    yaw, pitch = (big, small) if rng.random() < 0.5 else (small, big)
    return CameraSpec(level, kind, yaw_deg=yaw, pitch_deg=pitch)


def robot_state(level: int, rng: np.random.Generator) -> RobotSpec:
    return RobotSpec(level, "init_joints", magnitude=round(0.1 * level, 3), direction=robot.random_direction(rng))


def language_rewrite(level: int, rng: np.random.Generator, instruction: str) -> LanguageSpec:
    text = language.rewrite(instruction, level, int(rng.integers(1 << 31)))
    return LanguageSpec(level, language.KIND_BY_LEVEL[level], instruction=text)


def light(level: int, rng: np.random.Generator) -> LightSpec:
    kind = _pick(rng, {"diffuse": 285, "direction": 285, "specular": 286, "shadow": 286})
    if kind == "diffuse":  # dimmer or brighter, tinted more with the level
        scale = float(rng.choice([1 - 0.17 * level, 1 + 0.3 * level]))
        tint = 1 + rng.uniform(-0.1, 0.1, 3) * level
        rgb = tuple(round(float(v), 3) for v in np.clip(0.8 * scale * tint, 0.02, 2.5))
        return LightSpec(level, kind, diffuse=rgb)
    if kind == "specular":
        value = round(min(0.3 + 0.15 * level, 1.0), 3)
        return LightSpec(level, kind, specular=(value, value, value))
    tilt = np.deg2rad(15 * level)  # away from LIBERO's near-vertical light
    azimuth = rng.uniform(0, 2 * np.pi)
    direction = (float(np.sin(tilt) * np.cos(azimuth)), float(np.sin(tilt) * np.sin(azimuth)), float(-np.cos(tilt)))
    direction = tuple(round(v, 4) for v in direction)
    if kind == "direction":
        return LightSpec(level, kind, direction=direction)
    dim = round(0.8 * (1 - 0.08 * level), 3)  # shadows are drawn with a slightly dimmer light
    return LightSpec(level, kind, direction=direction, castshadow=True, diffuse=(dim, dim, dim))


TABLE_ASSETS = ("marble_floor", "white_marble_floor", "rustic_floor", "seamless_wood_planks_floor", "dark_floor_texture",
                "gray_ceramic_tile", "brown_ceramic_tile", "martin_novak_wood_table", "table_light_wood", "kona_gotham")
WALL_ASSETS = ("dark_blue_wall", "light_blue_wall", "gray_wall", "white_wall", "yellow_linen_wall_texture",
               "dark_green_plaster_wall", "stucco_wall", "cream-plaster", "canvas_sky_blue", "capriccio_sky")


def backdrop(level: int, rng: np.random.Generator) -> BackgroundSpec:
    """Levels 1-2: installed asset textures, 3-5: procedural patterns; the colour tint grows with the level."""
    kind = _pick(rng, {"table": 613, "theme": 463})

    def texture(assets: tuple[str, ...]) -> str:
        if level <= 2:
            return "asset:" + str(rng.choice(assets))
        return "procedural:" + str(rng.choice(background.PATTERNS))

    def tint() -> tuple[float, float, float]:
        return tuple(round(float(v), 3) for v in np.clip(1 - rng.uniform(0, 0.15 * level, 3), 0.2, 1))

    table, table_rgb = texture(TABLE_ASSETS), tint()
    wall, wall_rgb = (texture(WALL_ASSETS), tint()) if kind == "theme" else (None, (1.0, 1.0, 1.0))
    return BackgroundSpec(level, kind, table_texture=table, table_rgb=table_rgb, wall_texture=wall,
                          wall_rgb=wall_rgb, texture_seed=int(rng.integers(1 << 31)))


def noise(level: int, rng: np.random.Generator) -> NoiseSpec:
    kind = _pick(rng, {"glass_blur": 364, "gaussian_blur": 341, "motion_blur": 336, "zoom_blur": 288, "fog": 272})
    return NoiseSpec(level, kind, severity=2 * level - int(rng.integers(0, 2)), seed=int(rng.integers(1 << 31)))


def sample(dimension: str, level: int, rng: np.random.Generator, instruction: str) -> Perturbation:
    """A spec of every dimension except layout (see `pokevla.robustness.build`)."""
    if dimension == "camera":
        return camera(level, rng)
    if dimension == "robot":
        return robot_state(level, rng)
    if dimension == "language":
        return language_rewrite(level, rng, instruction)
    if dimension == "light":
        return light(level, rng)
    if dimension == "background":
        return backdrop(level, rng)
    if dimension == "noise":
        return noise(level, rng)
    raise ValueError(f"{dimension} variants are drawn by pokevla.robustness.build (they need the simulator)")

