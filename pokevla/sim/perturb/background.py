"""Background dimension: new table (floor, in floor scenes) and wall textures and colours at run time.

Texture pixels are rewritten in `model.tex_data` and uploaded to the GL context with
`mujoco.mjr_uploadTexture` (robosuite's own `upload_texture` passes its wrapper model and fails).
Sources: the texture PNGs of the installed LIBERO assets, or procedural patterns generated here.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from pokevla.common.errors import SimulatorError
from pokevla.sim.perturb.base import Perturber
from pokevla.sim.perturb.spec import BackgroundSpec

PATTERNS = ("checker", "stripes", "noise", "tiles")
TABLE_GEOMS = ("table_visual", "floor")  # tabletop scenes have a table; floor scenes put objects on the floor
WALL_GEOM = "wall_rear_visual"


@lru_cache(maxsize=1)
def asset_texture_dir() -> Path:
    from libero.libero import get_libero_path

    return Path(get_libero_path("assets")) / "textures"


def asset_textures() -> tuple[str, ...]:
    """Stems of the installed texture PNGs (walls, floors, tables, plaster, tiles)."""
    return tuple(sorted(p.stem for p in asset_texture_dir().glob("*.png")))


def procedural(pattern: str, size: int, seed: int) -> np.ndarray:
    """A two-colour pattern, uint8 (size, size, 3)."""
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, 256, size=(2, 3))
    cells = int(rng.integers(4, 12))
    y, x = np.mgrid[0:size, 0:size] * cells // size
    if pattern == "checker":
        mask = (x + y) % 2 == 0
    elif pattern == "stripes":
        mask = x % 2 == 0
    elif pattern == "tiles":
        mask = ((np.mgrid[0:size, 0:size] * cells * 4 // size) % 4 == 0).any(0)  # grout lines
    elif pattern == "noise":
        coarse = rng.random((cells, cells))
        mask = coarse[y, x] > 0.5
    else:
        raise SimulatorError(f"unknown procedural pattern {pattern!r}; choose from {', '.join(PATTERNS)}")
    return np.where(mask[..., None], a, b).astype(np.uint8)


def texture_pixels(name: str, width: int, height: int, seed: int) -> np.ndarray:
    """The pixels of texture `name` ("asset:<stem>" or "procedural:<pattern>"), uint8 (height, width, 3)."""
    import cv2

    source, _, stem = name.partition(":")
    if source == "asset":
        path = asset_texture_dir() / f"{stem}.png"
        if not path.exists():
            raise SimulatorError(f"background texture {stem!r} is not among the installed assets ({asset_texture_dir()})")
        img = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    elif source == "procedural":
        img = procedural(stem, 512, seed)
    else:
        raise SimulatorError(f"background texture {name!r} must start with 'asset:' or 'procedural:'")
    return cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)


def _material(model, geom_names: tuple[str, ...]) -> int:
    for name in geom_names:
        gid = model.geom_name2id(name) if name in model.geom_names else -1
        if gid >= 0 and model.geom_matid[gid] >= 0:
            return int(model.geom_matid[gid])
    raise SimulatorError(f"the scene has none of the geoms {geom_names} with a material")


class BackgroundPerturber(Perturber):
    """Pixels are generated once (the texture slots keep their size across hard resets)."""

    def __init__(self, spec: BackgroundSpec, env):
        import mujoco

        model = env.sim.model
        self.spec = spec
        self.swaps = [(TABLE_GEOMS, spec.table_texture, spec.table_rgb)]
        if spec.kind == "theme":
            self.swaps.append(((WALL_GEOM,), spec.wall_texture, spec.wall_rgb))
        self.pixels = []
        for geoms, texture, _ in self.swaps:
            tex = int(model.mat_texid[_material(model, geoms)][mujoco.mjtTextureRole.mjTEXROLE_RGB])
            if tex < 0:
                raise SimulatorError(f"the material of {geoms[0]} has no RGB texture to replace")
            w, h, c = (int(model.tex_width[tex]), int(model.tex_height[tex]), int(model.tex_nchannel[tex]))
            if c != 3:
                raise SimulatorError(f"texture {tex} has {c} channels; only RGB textures are replaced")
            self.pixels.append(texture_pixels(texture, w, h, spec.texture_seed).reshape(-1))

    def after_reset(self, env) -> None:
        import mujoco

        model = env.sim.model
        raw_model = model._model
        for (geoms, _, rgb), pixels in zip(self.swaps, self.pixels):
            mat = _material(model, geoms)
            tex = int(model.mat_texid[mat][mujoco.mjtTextureRole.mjTEXROLE_RGB])
            start = int(model.tex_adr[tex])
            raw_model.tex_data[start : start + pixels.size] = pixels
            model.mat_rgba[mat, :3] = rgb
            context = env.sim._render_context_offscreen
            if context is not None:  # physics-only envs have no GL context and no images
                context.gl_ctx.make_current()
                mujoco.mjr_uploadTexture(raw_model, context.con, tex)
