"""LIBERO-Plus robustness perturbations on top of `pokevla.sim`: one typed spec per dimension.

`EnvConfig(perturbation=spec)` makes `LiberoEnv` apply a spec; `attach` builds the dimension's
`Perturber` for a freshly created env. Manifests of variants live in `manifest.py`.
"""

from __future__ import annotations

import numpy as np

from pokevla.common.errors import ConfigError
from pokevla.sim.perturb.base import Perturber
from pokevla.sim.perturb.spec import (
    DIMENSIONS,
    LEVELS,
    BackgroundSpec,
    CameraSpec,
    LanguageSpec,
    LayoutSpec,
    LightSpec,
    NoiseSpec,
    Perturbation,
    RobotSpec,
    reset_kwargs,
    spec_from_dict,
)

__all__ = [
    "DIMENSIONS", "LEVELS", "BackgroundSpec", "CameraSpec", "LanguageSpec", "LayoutSpec", "LightSpec",
    "NoiseSpec", "Perturbation", "Perturber", "RobotSpec", "attach", "bddl_path", "init_states", "reset_kwargs",
    "spec_from_dict",
]


def attach(spec: Perturbation | None, env) -> Perturber:
    """The perturber of `spec` for `env` (a no-op one for None); reads base values from env's model."""
    if spec is None:
        return Perturber()
    from pokevla.sim.perturb import background, camera, layout, light, noise, robot

    perturbers = {
        CameraSpec: camera.CameraPerturber,
        RobotSpec: robot.RobotPerturber,
        LightSpec: light.LightPerturber,
        BackgroundSpec: background.BackgroundPerturber,
        NoiseSpec: noise.NoisePerturber,
        LayoutSpec: layout.LayoutPerturber,
    }
    if isinstance(spec, LanguageSpec):
        return Perturber()  # the env only swaps its instruction
    return perturbers[type(spec)](spec, env)


def bddl_path(base_bddl: str, spec: Perturbation | None) -> str:
    """The BDDL file to build the env from: a generated copy for distractor and scene layouts, else the task's."""
    if isinstance(spec, LayoutSpec) and (spec.distractors or spec.bddl_text):
        from pokevla.sim.perturb import layout

        return layout.bddl_path(base_bddl, spec)
    return base_bddl


def init_states(spec: Perturbation | None, official: np.ndarray, state_size: int) -> np.ndarray:
    """The init states trials start from (num_trials, state_size): a scene layout's own state as its
    only one (trial 0), none for a scatter layout, else the task's official init states."""
    if isinstance(spec, LayoutSpec) and spec.kind == "scatter":
        return np.empty((0, state_size))
    if not (isinstance(spec, LayoutSpec) and spec.sim_state):
        return official
    if len(spec.sim_state) != state_size:
        raise ConfigError(f"layout scene: sim_state has {len(spec.sim_state)} values, but its BDDL's task has a state of "
                          f"{state_size} (time, qpos, qvel); the state belongs to another scene")
    return np.asarray([spec.sim_state], dtype=np.float64)
