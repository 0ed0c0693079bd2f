"""The hooks through which `LiberoEnv` applies a perturbation; each dimension overrides what it needs.

Call order inside `LiberoEnv.reset`: `prepare_state` (the official init state about to be restored),
robosuite reset + set_init_state, `after_reset` (model edits: a hard reset rebuilt the model, so every
visual change is written again), the settle steps, then `start_episode`. `primary_image` sees every
third-person frame handed to the policy.
"""

from __future__ import annotations

import numpy as np


class Perturber:
    def prepare_state(self, env, state: np.ndarray) -> np.ndarray:
        return state

    def after_reset(self, env) -> None:
        pass

    def start_episode(self, episode_key: int) -> None:
        pass

    def primary_image(self, image: np.ndarray) -> np.ndarray:
        """image: uint8 (H, W, 3), already rotated upright."""
        return image
