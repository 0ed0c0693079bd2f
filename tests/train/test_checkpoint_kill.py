"""A kill at any write step of a checkpoint leaves a run that resumes from a complete checkpoint:
the previous one until `last` names the new one (the pointer is the commit), the new one after."""

import shutil
from pathlib import Path

import pytest
import torch

from pokevla.train import checkpoints as ckpt


class FolderModel:
    """Writes the files of a model folder, as `PokeVLA.save_pretrained` does."""

    def save_pretrained(self, path):
        path.mkdir(parents=True)
        (path / "config.json").write_text("{}")
        (path / "stats.json").write_text("{}")
        (path / "model.safetensors").write_bytes(b"weights")


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs, no handler catches it."""


def kill(*args, **kwargs):
    raise Killed


def state(step):
    return {"step": step, "optimizer": {}, "scheduler": {}}


# each write step of save_checkpoint, in order, and the checkpoint a resume must find after a kill there
STEPS = {
    "model files": (FolderModel, "save_pretrained", 1),
    "trainer state": (torch, "save", 1),
    "rename into place": (Path, "rename", 1),
    "last pointer": (ckpt, "write_text_atomic", 1),
    "pruning old checkpoints": (shutil, "rmtree", 2),
}


@pytest.mark.parametrize("where", list(STEPS))
def test_a_kill_at_each_write_step_resumes_from_a_complete_checkpoint(where, tmp_path, monkeypatch):
    run = tmp_path / "run"
    ckpt.save_checkpoint(run, 1, FolderModel(), state(1), keep=1)
    owner, name, expected_step = STEPS[where]
    with monkeypatch.context() as patch:
        patch.setattr(owner, name, kill)
        with pytest.raises(Killed):
            ckpt.save_checkpoint(run, 2, FolderModel(), state(2), keep=1)

    last, trainer = ckpt.resume_point(run, warn=lambda m: None)
    assert trainer["step"] == expected_step and last.name == f"step_{expected_step:07d}"
    assert ckpt.last_checkpoint(run) == last

    saved = ckpt.save_checkpoint(run, 3, FolderModel(), state(3), keep=1)  # the resumed run saves again
    assert [p.name for p in ckpt.complete_checkpoints(run)] == ["step_0000003"] == [saved.name]
    assert not list(ckpt.checkpoints_dir(run).glob(".staging_*"))
    assert ckpt.load_trainer_state(saved)["step"] == 3
