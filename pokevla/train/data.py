"""Training samples from a LeRobot v3 dataset, in the model's raw batch format.

A sample is one frame: both camera images, the state, the instruction and the chunk of the next T
actions (padded past the episode's end), plus the goal masks, depth and camera matrices when the
segmentation / geometry losses need them. `EpochSampler` gives every run the same data order from a
seed and can start mid-stream, so a resumed run continues the exact sequence it stopped in; it can
draw some frames more than once per epoch (the frames around gripper changes, where the rare decisions
are).
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from pokevla.common.errors import DatasetError
from pokevla.data.reader import DatasetReader
from pokevla.data.lerobot import quantile_stats


def parse_feature_map(pairs: tuple[str, ...]) -> dict[str, str]:
    mapping = {}
    for pair in pairs:
        if "=" not in pair:
            raise DatasetError(f"--feature-map {pair!r}: write OURS=THEIRS, e.g. observation.images.primary=observation.images.image")
        ours, theirs = pair.split("=", 1)
        mapping[ours.strip()] = theirs.strip()
    return mapping


def required_features(views: tuple[str, ...], seg: bool, geometry_teacher: str | None) -> list[str]:
    """The dataset features a model configuration trains on."""
    names = [f"observation.images.{v}" for v in views] + ["observation.state", "action"]
    if seg:
        names += [f"observation.masks.{v}" for v in views]
    if geometry_teacher == "depth":
        names += [f"observation.{k}.{v}" for v in views for k in ("depth", "intrinsics", "extrinsics")]
    elif geometry_teacher == "precomputed":
        names += [f"observation.geometry.{v}" for v in views]
    return names


class FrameDataset(Dataset):
    """Sample i -> raw sample dict of frame frames[i] (numpy arrays; images uint8 (H, W, 3), actions (T, 7)).

    frames: the dataset rows this split uses (default: all), in dataset order."""

    def __init__(self, reader: DatasetReader, features: list[str], chunk: int, frames: np.ndarray | None = None):
        reader.require(features)
        self.reader, self.features, self.chunk = reader, features, chunk
        self.frames = np.arange(len(reader)) if frames is None else np.asarray(frames)
        self.state_dim = reader.get("observation.state", 0).shape[-1] if len(reader) else 0

    def __len__(self) -> int:
        return len(self.frames)

    def episode_ends(self) -> np.ndarray:
        """bool (len,): the sample is the last frame of its episode."""
        return np.array([self.reader.episode_bounds(int(f))[1] - 1 == f for f in self.frames])

    def __getitem__(self, position: int) -> dict:
        r, index = self.reader, int(self.frames[position])
        actions, pad = r.action_chunk(index, self.chunk)
        sample = {"task": r.task(index), "action": actions.astype(np.float32), "action_is_pad": pad}
        for name in self.features:
            if name == "action":
                continue
            value = r.get(name, index)
            if name.startswith(("observation.intrinsics", "observation.extrinsics")):
                side = int(round(np.sqrt(value.size)))
                value = value.reshape(side, side)
            elif name.startswith("observation.masks") and value.ndim == 3:
                value = value[..., 0]
            sample[name] = value
        return sample


def collate(samples: list[dict]) -> dict:
    """Stacks samples into a batch: tensors for arrays, a list for the instructions."""
    batch = {"task": [s["task"] for s in samples]}
    for key in samples[0]:
        if key != "task":
            batch[key] = torch.as_tensor(np.stack([s[key] for s in samples]))
    return batch


def dataset_stats(reader: DatasetReader) -> dict:
    """1st/99th-percentile (and mean/std/min/max) statistics of state and action, from those columns only."""
    frames = np.arange(len(reader))
    return {key: quantile_stats(reader.get(key, frames)) for key in ("observation.state", "action")}


def near_transitions(gripper: np.ndarray, episode_ends: np.ndarray, radius: int) -> np.ndarray:
    """gripper (N,) commands of consecutive frames -> bool (N,): within `radius` frames of a sign change
    inside the same episode (`episode_ends`: True on each episode's last frame)."""
    sign = gripper > 0
    episode = np.concatenate([[0], np.cumsum(episode_ends[:-1])])
    change = np.zeros(len(sign), dtype=bool)
    change[1:] = (sign[1:] != sign[:-1]) & (episode[1:] == episode[:-1])
    near = np.zeros(len(sign), dtype=bool)
    for i in np.flatnonzero(change):
        lo, hi = max(0, i - radius), min(len(sign), i + radius)
        near[lo:hi] |= episode[lo:hi] == episode[i]
    return near


class EpochSampler(Sampler[int]):
    """Endless stream of per-epoch permutations (seed + epoch), from sample position `start`.

    `repeats` (size,) draws sample i that many times per epoch (default once). With `world_size` > 1
    (DDP) each rank takes every world_size-th index of the same stream.
    """

    def __init__(self, size: int, seed: int, start: int = 0, rank: int = 0, world_size: int = 1,
                 repeats: np.ndarray | None = None):
        if size == 0:
            raise DatasetError("the dataset has no frames")
        self.pool = np.arange(size) if repeats is None else np.repeat(np.arange(size), repeats)
        self.seed, self.start, self.rank, self.world_size = seed, start, rank, world_size
        self.epoch_size = len(self.pool)

    def epoch_order(self, epoch: int) -> np.ndarray:
        """The pool's samples in the order epoch `epoch` draws them."""
        order = torch.randperm(len(self.pool), generator=torch.Generator().manual_seed(self.seed + epoch))
        return self.pool[order.numpy()]

    def __iter__(self) -> Iterator[int]:
        position = self.start
        while True:
            epoch, offset = divmod(position, self.epoch_size)
            for i in self.epoch_order(epoch)[offset:].tolist():
                if position % self.world_size == self.rank:
                    yield i
                position += 1
