"""The run directory: its identity (`run.json`), atomic checkpoints and the `last` pointer.

    RUN/run.json                     model config, training config, dataset identity, versions
    RUN/checkpoints/step_0001000/    model folder (`PokeVLA.save_pretrained`) + trainer.pt
    RUN/checkpoints/last             name of the newest complete checkpoint (written last, atomically)
    RUN/tensorboard/                 logs

A checkpoint folder is assembled under a temporary name and renamed into place; `last` is updated
only after that, so a crash at any moment leaves the previous checkpoint usable.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from pokevla.common.errors import CheckpointError
from pokevla.common.io import write_text_atomic

TRAINER_STATE = "trainer.pt"


def checkpoints_dir(run: Path) -> Path:
    return run / "checkpoints"


def last_checkpoint(run: Path) -> Path | None:
    pointer = checkpoints_dir(run) / "last"
    if not pointer.exists():
        return None
    path = checkpoints_dir(run) / pointer.read_text().strip()
    if not path.is_dir():
        raise CheckpointError(f"{pointer} names {path.name}, which is missing; the run directory is damaged")
    return path


def save_checkpoint(run: Path, step: int, model, trainer_state: dict, keep: int) -> Path:
    """Writes model + trainer state as one folder, then points `last` at it; prunes old ones."""
    root = checkpoints_dir(run)
    final = root / f"step_{step:07d}"
    staging = root / f".staging_step_{step:07d}"
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    torch.save(trainer_state, staging / TRAINER_STATE)
    if final.exists():
        shutil.rmtree(final)
    staging.rename(final)
    write_text_atomic(root / "last", final.name + "\n")
    for old in sorted(p for p in root.glob("step_*") if p.is_dir())[:-keep]:
        shutil.rmtree(old)
    return final


def load_trainer_state(checkpoint: Path) -> dict:
    path = checkpoint / TRAINER_STATE
    if not path.exists():
        raise CheckpointError(f"{checkpoint} has no {TRAINER_STATE}: it is an exported model, not a resumable training checkpoint")
    return torch.load(path, map_location="cpu", weights_only=False)


def read_run(run: Path) -> dict | None:
    path = run / "run.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        raise CheckpointError(f"{path} is not valid JSON; the run directory is damaged") from None


def resolve_model_dir(path: str | Path) -> Path:
    """A run directory (its last checkpoint) or a checkpoint folder -> the model folder."""
    path = Path(path)
    if (path / "run.json").exists():
        last = last_checkpoint(path)
        if last is None:
            raise CheckpointError(f"run {path} has no checkpoint yet")
        return last
    if (path / "config.json").exists():
        return path
    raise CheckpointError(f"{path} is neither a training run (run.json) nor a checkpoint folder (config.json)")
