"""Rollout videos: both camera views side by side, written atomically as mp4."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pokevla.common.io import atomic_path

FPS = 20  # LIBERO's control rate: videos play in real time


def side_by_side(obs: dict) -> np.ndarray:
    """uint8 (H, 2W, 3): third-person view left, wrist view right."""
    views = [obs[k] for k in ("observation.images.primary", "observation.images.wrist") if k in obs]
    return np.concatenate(views, axis=1)


def write_video(path: str | Path, frames: list[np.ndarray], fps: int = FPS) -> None:
    import imageio.v2 as imageio

    with atomic_path(path) as tmp:
        # imageio picks the writer from the suffix; the temporary name keeps ".mp4" last.
        target = tmp.with_suffix(".mp4")
        with imageio.get_writer(target, fps=fps, codec="libx264", quality=7, macro_block_size=1) as writer:
            for frame in frames:
                writer.append_data(frame)
        target.replace(tmp)
