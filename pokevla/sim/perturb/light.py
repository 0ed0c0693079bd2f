"""Light dimension: diffuse colour/intensity, direction, specular and shadows of every scene light."""

from __future__ import annotations

import numpy as np

from pokevla.sim.perturb.base import Perturber
from pokevla.sim.perturb.spec import LightSpec


class LightPerturber(Perturber):
    def __init__(self, spec: LightSpec, env):
        self.spec = spec
        self.direction = np.asarray(spec.direction) / np.linalg.norm(spec.direction)

    def after_reset(self, env) -> None:
        model = env.sim.model
        for i in range(model.nlight):
            model.light_diffuse[i] = self.spec.diffuse
            model.light_dir[i] = self.direction
            model.light_specular[i] = self.spec.specular
            model.light_castshadow[i] = self.spec.castshadow
