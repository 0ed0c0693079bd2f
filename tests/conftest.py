"""Shared test fixtures: small synthetic LeRobot v3 datasets written by our own writer, and the check
that bad input ends in one line (`bad_input`)."""

from pathlib import Path

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


def _snapshot(path: Path):
    """A path's content: None when absent, bytes of a file, {relative name: bytes or None} of a folder
    (a `.lock` aside: a refused rerun may take the folder's lock, which holds only its pid)."""
    if not path.exists():
        return None
    if path.is_file():
        return path.read_bytes()
    return {str(p.relative_to(path)): p.read_bytes() if p.is_file() else None
            for p in sorted(path.rglob("*")) if p.name != ".lock"}


@pytest.fixture
def bad_input(capsys, monkeypatch):
    """bad_input(argv, text, untouched=()) runs `pokevla argv` and checks that it ends in exit status 2
    with one line on stderr, "error: ..." holding `text`, no traceback, and that every path in
    `untouched` is as it was (absent stays absent: no empty folder left behind). A progress bar
    cleared with carriage returns before the error is not a line. Bad input must be refused before
    any simulator starts: starting one fails the test at once."""
    import pokevla.sim.env
    import pokevla.sim.parallel
    import pokevla.sim.render
    from pokevla.cli import main

    def simulator(*args, **kwargs):
        raise AssertionError("the bad input reached the simulator instead of being refused")

    for module, name in ((pokevla.sim.env, "_import_libero"), (pokevla.sim.parallel, "map_unordered"),
                         (pokevla.sim.render, "select_renderer")):
        monkeypatch.setattr(module, name, simulator)

    def check(argv, text, untouched=()):
        before = {Path(p): _snapshot(Path(p)) for p in untouched}
        capsys.readouterr()
        assert main([str(a) for a in argv]) == 2
        err = capsys.readouterr().err
        lines = [visible for line in err.split("\n") if (visible := line.rsplit("\r", 1)[-1]).strip()]
        assert "Traceback" not in err
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        assert text in lines[0]
        for path, content in before.items():
            assert _snapshot(path) == content, f"{path} was changed"
        return lines[0]

    return check
