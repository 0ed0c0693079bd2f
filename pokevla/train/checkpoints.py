"""The run directory: its identity (`run.json`), atomic checkpoints and the `last` pointer.

    RUN/run.json                     model config, training config, dataset identity, versions
    RUN/checkpoints/step_0001000/    model folder (`PokeVLA` / `PokeVLM.save_pretrained`) + trainer.pt
    RUN/checkpoints/last             name of the newest complete checkpoint (written last, atomically)
    RUN/tensorboard/                 logs

A checkpoint folder is assembled under a temporary name and renamed into place; `last` is updated
only after that, so a crash at any moment leaves the previous checkpoint usable.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch

from pokevla.common.errors import CheckpointError
from pokevla.common.io import read_json, write_text_atomic

TRAINER_STATE = "trainer.pt"


def checkpoints_dir(run: Path) -> Path:
    return run / "checkpoints"


def model_checkpoints(run: Path) -> list[Path]:
    """Checkpoint folders holding a loadable model, oldest first (a stage-1 model folder has no stats.json)."""
    return sorted(p for p in checkpoints_dir(run).glob("step_*")
                  if p.is_dir() and all((p / n).is_file() for n in ("config.json", "model.safetensors")))


def complete_checkpoints(run: Path) -> list[Path]:
    """Checkpoint folders with every file a resume needs, oldest first."""
    return [p for p in model_checkpoints(run) if (p / TRAINER_STATE).is_file()]


def last_checkpoint(run: Path) -> Path | None:
    """The checkpoint `last` names; without a readable pointer (a kill while it was first written),
    the newest complete checkpoint folder."""
    pointer = checkpoints_dir(run) / "last"
    name = pointer.read_text().strip() if pointer.is_file() else ""
    if name and (checkpoints_dir(run) / name).is_dir():
        return checkpoints_dir(run) / name
    complete = complete_checkpoints(run)
    if name and not complete:
        raise CheckpointError(f"{pointer} names {name}, which is missing, and no complete checkpoint is left; "
                              f"the run directory is damaged")
    return complete[-1] if complete else None


def resume_point(run: Path, warn=print) -> tuple[Path | None, dict | None]:
    """(checkpoint, trainer state) to resume from: the last checkpoint, or the one before it when
    the last is damaged (a truncated trainer state, say). (None, None) for a run with none."""
    last = last_checkpoint(run)
    if last is None:
        return None, None
    older = [c for c in reversed(complete_checkpoints(run)) if c.name < last.name]
    for checkpoint, fallback in zip([last, *older], [*older, None]):
        try:
            return checkpoint, load_trainer_state(checkpoint)
        except CheckpointError as e:
            if fallback is None:
                raise
            warn(f"warning: {e}; resuming from {fallback.name} instead")


def save_checkpoint(run: Path, step: int, model, trainer_state: dict, keep: int) -> Path:
    """Writes model + trainer state as one folder, then points `last` at it; keeps the newest `keep`."""
    if keep < 1:
        raise CheckpointError(f"keep_checkpoints must be at least 1, got {keep}")
    root = checkpoints_dir(run)
    final = root / f"step_{step:07d}"
    staging = root / f".staging_step_{step:07d}"
    for stale in root.glob(".staging_step_*"):  # left by a killed run
        shutil.rmtree(stale, ignore_errors=True)
    model.save_pretrained(staging)
    torch.save(_encode_rng(trainer_state), staging / TRAINER_STATE)
    if final.exists():
        shutil.rmtree(final)
    staging.rename(final)
    write_text_atomic(root / "last", final.name + "\n")
    for old in sorted(p for p in root.glob("step_*") if p.is_dir())[:-keep]:
        shutil.rmtree(old)
    return final


def _encode_rng(state: dict) -> dict:
    """NumPy's RNG state holds an ndarray, which `torch.load(weights_only=True)` refuses: store its
    words as a tensor so the whole trainer state loads without unpickling arbitrary objects."""
    if "numpy_rng" not in state:
        return state
    kind, keys, pos, has_gauss, cached = state["numpy_rng"]
    return {**state, "numpy_rng": {"kind": kind, "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                                   "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}}


def _decode_rng(state: dict) -> dict:
    if not isinstance(state.get("numpy_rng"), dict):
        return state
    r = state["numpy_rng"]
    return {**state, "numpy_rng": (r["kind"], r["keys"].numpy().astype(np.uint32), r["pos"], r["has_gauss"], r["cached_gaussian"])}


def load_trainer_state(checkpoint: Path) -> dict:
    path = checkpoint / TRAINER_STATE
    if not path.exists():
        raise CheckpointError(f"{checkpoint} has no {TRAINER_STATE}: it is an exported model, not a resumable training checkpoint")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)  # never unpickle objects from a file
    except Exception as e:  # a truncated file, or one holding objects other than tensors and plain data
        raise CheckpointError(f"{path} cannot be loaded safely ({type(e).__name__}: {str(e).splitlines()[0][:120]}); "
                              f"it is damaged or was not written by this version of pokevla") from None
    return _decode_rng(state)


def read_run(run: Path) -> dict | None:
    path = run / "run.json"
    if not path.exists():
        return None
    return read_json(path, CheckpointError)


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
