"""Random batches and statistics in the dataset's format, for tests, benchmarks and smoke runs.

The scene is a tilted plane seen by two cameras, with a square goal object in each view: enough for
every loss to have a target, not meant to be learnable beyond memorisation.
"""

from __future__ import annotations

import torch

from pokevla.model.config import PokeVLAConfig

TASKS = ("put the bowl on the plate", "open the top drawer of the cabinet",
         "pick up the alphabet soup and place it in the basket")


def synthetic_stats(config: PokeVLAConfig) -> dict:
    """LeRobot-format statistics for `synthetic_batch` (state and actions spread over [-1, 1])."""
    def feature(dim: int) -> dict:
        return {"mean": [0.0] * dim, "std": [0.5] * dim, "min": [-1.0] * dim, "max": [1.0] * dim,
                "q01": [-0.9] * dim, "q99": [0.9] * dim}
    return {"observation.state": feature(config.expert.state_dim), "action": feature(config.expert.action_dim)}


def _camera(size: int, height: float) -> tuple[torch.Tensor, torch.Tensor]:
    K = torch.tensor([[size, 0.0, size / 2], [0.0, size, size / 2], [0.0, 0.0, 1.0]])
    T = torch.eye(4)
    T[:3, :3] = torch.tensor([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]])  # looking straight down
    T[2, 3] = height
    return K, T


def synthetic_batch(config: PokeVLAConfig, batch_size: int, image_size: int = 128, training: bool = True,
                    seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    B, S = batch_size, image_size
    batch: dict = {"observation.state": torch.rand(B, config.expert.state_dim, generator=g) * 2 - 1,
                   "task": [TASKS[i % len(TASKS)] for i in range(B)]}
    for i, view in enumerate(config.views):
        batch[f"observation.images.{view}"] = torch.randint(0, 256, (B, S, S, 3), dtype=torch.uint8, generator=g)
        if not training:
            continue
        masks = torch.zeros(B, S, S, dtype=torch.uint8)
        for b in range(B):
            r, c = torch.randint(0, S // 2, (2,), generator=g).tolist()
            masks[b, r:r + S // 4, c:c + S // 4] = 1 + b % 2
        batch[f"observation.masks.{view}"] = masks
        ramp = torch.linspace(0, 0.3, S)
        depth = 1.0 + 0.2 * i + ramp[None, :] + 0.1 * ramp[:, None]  # (S, S): a tilted plane
        batch[f"observation.depth.{view}"] = depth.expand(B, S, S).clone()
        K, T = _camera(S, 1.0 + 0.2 * i)
        batch[f"observation.intrinsics.{view}"] = K.expand(B, 3, 3).clone()
        batch[f"observation.extrinsics.{view}"] = T.expand(B, 4, 4).clone()
        if config.geometry.teacher == "precomputed":
            batch[f"observation.geometry.{view}"] = torch.randn(B, config.grid ** 2, config.geometry.dim, generator=g)
    if training:
        T, A = config.expert.chunk_size, config.expert.action_dim
        action = torch.rand(B, T, A, generator=g) * 2 - 1
        action[..., -1] = torch.where(action[..., -1] > 0, 1.0, -1.0)
        pad = torch.zeros(B, T, dtype=torch.bool)
        pad[-1, T - 2:] = True  # the last sample ends two steps before its chunk does
        batch.update({"action": action, "action_is_pad": pad})
    return batch
