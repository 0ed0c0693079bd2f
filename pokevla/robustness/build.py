"""Builds a robustness manifest: N variants per dimension for one suite, levels 1-5 in turn.

Variant i of a dimension goes to task i mod #tasks at level i mod 5 + 1, with a generator seeded
from (seed, suite, dimension, i), so a manifest is reproducible and a larger N only appends. Layout
variants are checked in the simulator (physics only) and re-drawn until valid.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

from pokevla.common.errors import SimulatorError
from pokevla.sim import suites
from pokevla.sim.perturb import DIMENSIONS, LayoutSpec, layout, sample
from pokevla.sim.perturb.manifest import Variant

LAYOUT_ATTEMPTS = 8
SUITE_INDEX = {name: i for i, name in enumerate(suites.SUITES)}


def variant_rng(seed: int, suite: str, dimension: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, SUITE_INDEX[suite], DIMENSIONS.index(dimension), index])


def build_manifest(suite: str, per_dimension: int, seed: int = 0, dimensions: tuple[str, ...] = DIMENSIONS,
                   log: Callable[[str], None] = print) -> list[Variant]:
    suites.get_suite(suite)
    unknown = [d for d in dimensions if d not in DIMENSIONS]
    if unknown:
        raise SimulatorError(f"unknown dimension {unknown[0]!r}; choose from {', '.join(DIMENSIONS)}")
    tasks = suites.list_tasks(suite)
    variants = []
    for dimension in dimensions:
        for i in range(per_dimension):
            task, level = tasks[i % len(tasks)], i % 5 + 1
            rng = variant_rng(seed, suite, dimension, i)
            vid = f"{suite}/t{task.task_id}/{dimension}/{i}"
            if dimension == "layout":
                spec = layout_variant(task, level, rng, log)
                trial = None if spec.distractors else 0
            else:
                spec = sample.sample(dimension, level, rng, task.instruction)
                trial = 0  # LIBERO-Plus: one episode per variant from init state 0
            instruction = getattr(spec, "instruction", task.instruction) if dimension == "language" else task.instruction
            variants.append(Variant(vid, suite, task.task_id, seed, trial, instruction, spec))
    return variants


@lru_cache(maxsize=None)
def movable_objects(suite: str, task_id: int) -> tuple:
    """The task's objects a shift layout may move (needs an env, so worked out once per task)."""
    from pokevla.sim.env import EnvConfig, LiberoEnv

    task = suites.get_task(suite, task_id)
    with LiberoEnv(EnvConfig(suite, task_id, render=False)) as env:
        return tuple(layout.shiftable_objects(env, Path(task.bddl_path).read_text()))


def layout_variant(task: suites.TaskInfo, level: int, rng: np.random.Generator, log: Callable[[str], None],
                   kind: str | None = None) -> LayoutSpec:
    """A valid layout of `kind` ("distractors" or "shift"; None: drawn 829 : 696 as in LIBERO-Plus,
    distractors when nothing can be shifted); raises if none is found."""
    from pokevla.sim.env import EnvConfig, LiberoEnv

    text = Path(task.bddl_path).read_text()
    movable = list(movable_objects(task.suite, task.task_id))
    if kind is None:
        kind = "distractors" if not movable or rng.random() < 829 / 1525 else "shift"
    elif kind == "shift" and not movable:
        raise SimulatorError(f"{task.suite} task {task.task_id} has no object a shift layout may move")
    reasons = []
    for _ in range(LAYOUT_ATTEMPTS):
        if kind == "distractors":
            try:
                planned = layout.plan_distractors(text, level, rng)
            except SimulatorError as e:  # a crowded scene: draw again
                reasons.append(str(e))
                continue
            spec = LayoutSpec(level, kind, distractors=planned, scene_seed=int(rng.integers(1 << 31)))
        else:
            spec = LayoutSpec(level, kind, shifts=layout.plan_shifts(movable, level, rng))
        with LiberoEnv(EnvConfig(task.suite, task.task_id, render=False, perturbation=spec)) as env:
            reason = layout.check_layout(env, spec)
        if reason is None:
            return spec
        reasons.append(reason)
        log(f"  {task.suite} t{task.task_id} layout L{level}: re-drawing ({reason})")
    raise SimulatorError(f"{task.suite} task {task.task_id}: no valid {kind} layout at level {level} in "
                         f"{LAYOUT_ATTEMPTS} draws (last: {reasons[-1]})")
