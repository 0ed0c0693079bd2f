"""Background dimension: new table (floor, in floor scenes) and wall textures and colours at run time.

Texture pixels are rewritten in `model.tex_data` and uploaded to the GL context with
`mujoco.mjr_uploadTexture` (robosuite's own `upload_texture` passes its wrapper model and fails).
Sources: the texture PNGs of the installed LIBERO assets, or procedural patterns generated here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
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
        swaps = [(TABLE_GEOMS, spec.table_texture, spec.table_rgb)]
        if spec.kind == "theme":
            swaps.append(((WALL_GEOM,), spec.wall_texture, spec.wall_rgb))
        self.slots = []  # (material id, texture id, rgb, pixels) per swapped surface
        for geoms, texture, rgb in swaps:
            mat = _material(model, geoms)
            tex = int(model.mat_texid[mat][mujoco.mjtTextureRole.mjTEXROLE_RGB])
            if tex < 0:
                raise SimulatorError(f"the material of {geoms[0]} has no RGB texture to replace")
            w, h, c = (int(model.tex_width[tex]), int(model.tex_height[tex]), int(model.tex_nchannel[tex]))
            if c != 3:
                raise SimulatorError(f"texture {tex} has {c} channels; only RGB textures are replaced")
            self.slots.append((mat, tex, rgb, texture_pixels(texture, w, h, spec.texture_seed).reshape(-1)))

    def after_reset(self, env) -> None:
        for mat, tex, rgb, pixels in self.slots:
            _paint(env, mat, tex, rgb, pixels)


def _paint(env, mat: int, tex: int, rgb, pixels: np.ndarray) -> None:
    """Writes a material's colour and its texture's pixels, and uploads them to the env's GL context."""
    import mujoco

    model = env.sim.model
    raw_model = model._model
    start = int(model.tex_adr[tex])
    raw_model.tex_data[start : start + pixels.size] = pixels
    model.mat_rgba[mat, :3] = rgb
    context = env.sim._render_context_offscreen
    if context is not None:  # physics-only envs have no GL context and no images
        context.gl_ctx.make_current()
        mujoco.mjr_uploadTexture(raw_model, context.con, tex)


@contextmanager
def restyled(env, spec: BackgroundSpec | None) -> Iterator[None]:
    """Inside the block the env shows `spec`'s background (None: its own); after it, what it showed before.
    For renders of restored states without a reset, e.g. knowledge frames in many scene styles."""
    if spec is None:
        yield
        return
    perturber = BackgroundPerturber(spec, env)
    model = env.sim.model
    before = []  # the same slots with what they show now
    for mat, tex, _, pixels in perturber.slots:
        start = int(model.tex_adr[tex])
        shown = model._model.tex_data[start : start + pixels.size].copy()
        before.append((mat, tex, model.mat_rgba[mat, :3].copy(), shown))
    perturber.after_reset(env)
    try:
        yield
    finally:
        for slot in reversed(before):  # reversed: two surfaces sharing a texture get the first one's pixels back
            _paint(env, *slot)
