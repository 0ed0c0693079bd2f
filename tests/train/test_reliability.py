"""A run folder survives being moved, a kill at any write, a damaged checkpoint and a tampered file."""

import pickle
import shutil

import pytest
import torch

from pokevla.cli import main
from pokevla.common.errors import CheckpointError
from pokevla.model.config import get_preset
from pokevla.train import checkpoints as ckpt
from pokevla.train import loop

from .test_train import cfg, demos  # noqa: F401  (the fixture)


@pytest.fixture
def run(demos, tmp_path):  # noqa: F811
    loop.train(cfg(demos, tmp_path / "run"), get_preset("tiny"), resume=False, progress=False)
    return tmp_path / "run"


def test_a_copied_run_resumes_in_its_new_folder_and_a_moved_dataset_can_be_named(run, demos, tmp_path, capsys):  # noqa: F811
    import json

    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    recorded = json.loads((copy / "run.json").read_text())
    recorded["train"]["steps"] = 6
    (copy / "run.json").write_text(json.dumps(recorded))
    before = sorted(p.name for p in (run / "checkpoints").iterdir())
    moved = tmp_path / "moved_demos"
    shutil.move(str(demos), moved)
    assert main(["train", "--out", str(copy), "--resume"]) == 2
    assert "name where it is now with --dataset DIR" in capsys.readouterr().err
    assert main(["train", "--out", str(copy), "--resume", "--dataset", str(moved)]) == 0
    assert ckpt.last_checkpoint(copy).name == "step_0000006"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == before  # the original is untouched


def test_a_missing_pointer_falls_back_to_the_newest_complete_checkpoint(run):
    (run / "checkpoints/last").unlink()  # killed while the first pointer was written
    assert ckpt.last_checkpoint(run).name == "step_0000004"
    (run / "checkpoints/last").write_text("step_00")  # torn
    assert ckpt.last_checkpoint(run).name == "step_0000004"


def test_a_damaged_last_checkpoint_resumes_from_the_one_before(run):
    trainer = run / "checkpoints/step_0000004/trainer.pt"
    trainer.write_bytes(trainer.read_bytes()[:100])  # truncated
    warnings = []
    checkpoint, state = ckpt.resume_point(run, warn=warnings.append)
    assert checkpoint.name == "step_0000002" and state["step"] == 2
    assert "cannot be loaded safely" in warnings[0] and "resuming from step_0000002" in warnings[0]


def test_a_tampered_trainer_state_is_refused_not_executed(run, tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    trainer = run / "checkpoints/step_0000004/trainer.pt"
    torch.save({"step": 4, "evil": Payload()}, trainer, pickle_protocol=pickle.HIGHEST_PROTOCOL)
    with pytest.raises(CheckpointError, match="cannot be loaded safely"):
        ckpt.load_trainer_state(run / "checkpoints/step_0000004")
    assert not marker.exists()


def test_bad_numbers_are_refused_before_anything_is_written(demos, tmp_path, capsys):  # noqa: F811
    for flags, text in [(["--keep-checkpoints", "-1"], "--keep-checkpoints must be at least 1"),
                        (["--steps", "0"], "--steps must be at least 1"), (["--lr", "-1"], "--lr must be positive"),
                        (["--batch-size", "0"], "--batch-size must be at least 1"),
                        (["--device", "bogus"], "--device 'bogus'")]:
        assert main(["train", "--preset", "tiny", "--dataset", str(demos), "--out", str(tmp_path / "r"), *flags]) == 2
        err = capsys.readouterr().err
        assert text in err and err.count("\n") == 1
    assert not (tmp_path / "r").exists()
