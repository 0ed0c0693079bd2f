"""Per-dimension cost: extra milliseconds per reset and per step over the unperturbed env.

One env per variant (level 3, one per sub-type where the cost differs), two timed resets (median)
and N timed steps of small random actions. A benchmark, not a test: numbers depend on the machine.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from pokevla.sim.perturb import (
    BackgroundSpec, CameraSpec, LanguageSpec, LayoutSpec, LightSpec, NoiseSpec, RobotSpec, reset_kwargs,
)
from pokevla.sim.perturb import robot

LEVEL = 3


def bench_variants(task_instruction: str, distractors: tuple, shifts: tuple) -> list[tuple[str, object]]:
    return [
        ("none", None),
        ("camera orbit", CameraSpec(LEVEL, "orbit", azimuth_deg=40.0, elevation_deg=15.0)),
        ("robot", RobotSpec(LEVEL, "init_joints", magnitude=0.3, direction=robot.random_direction(np.random.default_rng(0)))),
        ("language", LanguageSpec(LEVEL, "commonsense", instruction="Rewritten: " + task_instruction)),
        ("light diffuse", LightSpec(LEVEL, "diffuse", diffuse=(0.5, 0.45, 0.4))),
        ("light shadow", LightSpec(LEVEL, "shadow", direction=(0.5, 0.3, -0.8), castshadow=True)),
        ("background table", BackgroundSpec(LEVEL, "table", table_texture="procedural:checker", texture_seed=1)),
        ("background theme", BackgroundSpec(LEVEL, "theme", table_texture="asset:marble_floor",
                                            wall_texture="asset:dark_blue_wall")),
        *[(f"noise {k}", NoiseSpec(LEVEL, k, severity=6, seed=0)) for k in NoiseSpec.kinds],
        *([("layout shift", LayoutSpec(LEVEL, "shift", shifts=shifts))] if shifts else []),  # nothing movable: no row
        ("layout distractors", LayoutSpec(LEVEL, "distractors", distractors=distractors, scene_seed=1)),
    ]


def bench(suite: str, task_id: int, resolution: int, steps: int, log: Callable[[str], None] = print) -> list[dict]:
    from pokevla.robustness.build import layout_variant, movable_objects
    from pokevla.sim import suites
    from pokevla.sim.env import EnvConfig, LiberoEnv

    task = suites.get_task(suite, task_id)
    rng = np.random.default_rng(0)
    distractors = layout_variant(task, LEVEL, rng, log, kind="distractors").distractors
    shifts = layout_variant(task, LEVEL, rng, log, kind="shift").shifts if movable_objects(suite, task_id) else ()
    rows = []
    for name, spec in bench_variants(task.instruction, distractors, shifts):
        with LiberoEnv(EnvConfig(suite, task_id, resolution=resolution, perturbation=spec)) as env:
            kwargs = reset_kwargs(spec)
            resets = []
            for _ in range(2):
                t0 = time.perf_counter()
                env.reset(**kwargs)
                resets.append(time.perf_counter() - t0)
            actions = np.clip(np.random.default_rng(1).normal(0, 0.3, (steps, 7)), -1, 1)
            t0 = time.perf_counter()
            for a in actions:
                env.step(a)
            step_s = (time.perf_counter() - t0) / steps
        rows.append({"variant": name, "reset_ms": 1000 * float(np.median(resets)), "step_ms": 1000 * step_s})
        log(f"{name:>24}: reset {rows[-1]['reset_ms']:.0f} ms, step {rows[-1]['step_ms']:.1f} ms")
    base = rows[0]
    for row in rows:
        row["extra_reset_ms"] = row["reset_ms"] - base["reset_ms"]
        row["extra_step_ms"] = row["step_ms"] - base["step_ms"]
    return rows
