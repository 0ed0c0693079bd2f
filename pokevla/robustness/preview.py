"""Picture check: one third-person image per dimension and level of one task, and a contact sheet."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from pokevla.sim.perturb import DIMENSIONS, reset_kwargs

TILE_LABEL_HEIGHT = 14


def render_variant(suite: str, task_id: int, spec, resolution: int, reset_kwargs: dict) -> np.ndarray:
    """uint8 (R, R, 3): the policy's first third-person frame under `spec` (None: unperturbed)."""
    from pokevla.sim.env import EnvConfig, LiberoEnv

    with LiberoEnv(EnvConfig(suite, task_id, resolution=resolution, views=("primary",), perturbation=spec)) as env:
        return env.reset(**reset_kwargs)["observation.images.primary"]


def preview(suite: str, task_id: int, out: str | Path, resolution: int = 128, seed: int = 0,
            dimensions: tuple[str, ...] = DIMENSIONS, log: Callable[[str], None] = print) -> Path:
    """Writes DIR/clean.png, DIR/<dimension>_L<level>.png, DIR/language.txt and DIR/contact_sheet.png."""
    from PIL import Image

    from pokevla.robustness.build import layout_variant, variant_rng
    from pokevla.sim import suites
    from pokevla.sim.perturb import sample

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    task = suites.get_task(suite, task_id)
    clean = render_variant(suite, task_id, None, resolution, {"trial": 0})
    Image.fromarray(clean).save(out / "clean.png")
    rows, texts = [], [f"original: {task.instruction}"]
    for dimension in dimensions:
        row = [(clean, "original")]
        for level in range(1, 6):
            rng = variant_rng(seed, suite, dimension, level)
            if dimension == "layout":
                spec = layout_variant(task, level, rng, log)
            else:
                spec = sample.sample(dimension, level, rng, task.instruction)
            kwargs = reset_kwargs(spec)
            if dimension == "language":
                image = clean  # the scene is unchanged; the rewrite goes to language.txt
                texts.append(f"L{level}: {spec.instruction}")
            else:
                image = render_variant(suite, task_id, spec, resolution, kwargs)
            Image.fromarray(image).save(out / f"{dimension}_L{level}.png")
            row.append((image, f"{dimension} L{level} {spec.kind}"))
            log(f"{dimension} L{level}: {spec}")
        rows.append(row)
    (out / "language.txt").write_text("\n".join(texts) + "\n")
    sheet = contact_sheet(rows)
    sheet.save(out / "contact_sheet.png", optimize=True)
    return out / "contact_sheet.png"


def contact_sheet(rows: list[list[tuple[np.ndarray, str]]]):
    """A grid of labelled tiles (one row per dimension)."""
    from PIL import Image, ImageDraw

    h, w = rows[0][0][0].shape[:2]
    tile_h = h + TILE_LABEL_HEIGHT
    sheet = Image.new("RGB", (w * max(len(r) for r in rows), tile_h * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, row in enumerate(rows):
        for j, (image, label) in enumerate(row):
            sheet.paste(Image.fromarray(image), (j * w, i * tile_h + TILE_LABEL_HEIGHT))
            draw.text((j * w + 2, i * tile_h + 1), label[: w // 6], fill="black")
    return sheet
