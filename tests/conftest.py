"""Shared test fixtures: small synthetic LeRobot v3 datasets written by our own writer."""

import numpy as np
import pytest

from pokevla.data.features import VIEWS, demo_features
from pokevla.data.lerobot import DatasetWriter, encode_png


def synthetic_episode(length: int, seed: int, resolution: int) -> dict:
    """Random frames with every feature of a generated demonstration dataset."""
    rng = np.random.default_rng(seed)
    frames = {
        "observation.state": rng.normal(size=(length, 8)).astype(np.float32),
        "action": rng.uniform(-1, 1, size=(length, 7)).astype(np.float32),
    }
    k = np.array([[resolution, 0, resolution / 2], [0, resolution, resolution / 2], [0, 0, 1]], np.float32)
    for view in VIEWS:
        frames[f"observation.images.{view}"] = [encode_png(rng.integers(0, 255, (resolution, resolution, 3), dtype=np.uint8)) for _ in range(length)]
        frames[f"observation.masks.{view}"] = [encode_png(rng.integers(0, 3, (resolution, resolution), dtype=np.uint8)) for _ in range(length)]
        frames[f"observation.depth.{view}"] = [encode_png(d) for d in rng.integers(300, 2000, (length, resolution, resolution)).astype(np.uint16)]
        frames[f"observation.intrinsics.{view}"] = np.tile(k.reshape(-1), (length, 1))
        frames[f"observation.extrinsics.{view}"] = np.tile(np.eye(4, dtype=np.float32).reshape(-1), (length, 1))
    return frames


@pytest.fixture
def make_dataset():
    """make_dataset(root, lengths, tasks, resolution=16) -> root, the episodes' frames."""

    def make(root, lengths, tasks, resolution=16, extra=None):
        writer = DatasetWriter(root, demo_features(resolution), fps=20, robot_type="panda", extra_info=extra)
        episodes = []
        for i, (n, task) in enumerate(zip(lengths, tasks)):
            frames = synthetic_episode(n, i, resolution)
            writer.add_episode(frames, task=task, extra={"task_id": i % 2, "seed": i})
            episodes.append(frames)
        return root, episodes

    return make
