"""Training: steps change the weights, checkpoints load, resume reproduces the same run, errors are clear."""

import json

import numpy as np
import pytest
import torch

from pokevla.cli import main
from pokevla.common.errors import CheckpointError, ConfigError, DatasetError, PokeVLAError
from pokevla.model.config import get_preset
from pokevla.model.pokevla import PokeVLA
from pokevla.train import checkpoints as ckpt
from pokevla.train import loop
from pokevla.train.config import TrainConfig
from pokevla.train.data import EpochSampler, near_transitions

TASKS = ["pick up the bowl", "open the drawer", "pick up the bowl"]


@pytest.fixture
def demos(tmp_path, make_dataset):
    root, _ = make_dataset(tmp_path / "demos", [6, 5, 7], TASKS, resolution=32,
                           extra={"pokevla": {"generator": {"suite": "libero_object"}}})
    return root


def cfg(dataset, out, steps=4, **kw):
    return TrainConfig(dataset=str(dataset), out=str(out), steps=steps, **{"batch_size": 2, "save_every": 2, "log_every": 1, **kw})


def weights(path):
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def test_steps_change_weights_and_write_loadable_checkpoints(demos, tmp_path):
    summary = loop.train(cfg(demos, tmp_path / "run"), get_preset("tiny"), resume=False, progress=False)
    run = tmp_path / "run"
    assert summary["step"] == 4 and ckpt.last_checkpoint(run).name == "step_0000004"
    a, b = weights(run / "checkpoints/step_0000002"), weights(run / "checkpoints/step_0000004")
    changed = [k for k in a if not torch.equal(a[k], b[k])]
    assert len(changed) > len(a) // 2
    model = PokeVLA.from_pretrained(ckpt.last_checkpoint(run))
    obs = {"observation.images.primary": torch.zeros(32, 32, 3, dtype=torch.uint8),
           "observation.images.wrist": torch.zeros(32, 32, 3, dtype=torch.uint8),
           "observation.state": torch.zeros(8), "task": "pick up the bowl"}
    assert model.predict_action_chunk(obs).shape == (1, 8, 7)
    run_info = json.loads((run / "run.json").read_text())
    assert run_info["data"]["suite"] == "libero_object" and run_info["model"]["preset"] == "tiny"
    assert (run / "tensorboard").is_dir()


def test_the_summary_averages_the_first_and_last_steps_losses(demos, tmp_path, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from pokevla.train import runner

    monkeypatch.setattr(runner, "LOSS_WINDOW", 2)
    summary = loop.train(cfg(demos, tmp_path / "run"), get_preset("tiny"), resume=False, progress=False)
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    losses = [e.value for e in events.Scalars("train/loss")]  # one per step (log_every 1)
    assert len(losses) == 4
    assert summary["first_loss"] == pytest.approx(np.mean(losses[:2]), rel=1e-5)
    assert summary["last_loss"] == pytest.approx(np.mean(losses[2:]), rel=1e-5)
    assert runner.loss_summary(summary).startswith(f"loss {summary['last_loss']:.4f} over the last 2 steps")


def test_resume_continues_at_the_right_step_with_the_same_data_order(demos, tmp_path, monkeypatch):
    loop.train(cfg(demos, tmp_path / "straight"), get_preset("tiny"), resume=False, progress=False)

    real_save = ckpt.save_checkpoint

    def save_then_crash(*args, **kwargs):
        path = real_save(*args, **kwargs)
        raise KeyboardInterrupt  # killed right after the first checkpoint (step 2)

    monkeypatch.setattr(ckpt, "save_checkpoint", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        loop.train(cfg(demos, tmp_path / "broken"), get_preset("tiny"), resume=False, progress=False)
    monkeypatch.setattr(ckpt, "save_checkpoint", real_save)
    assert ckpt.last_checkpoint(tmp_path / "broken").name == "step_0000002"

    summary = loop.train(cfg(demos, tmp_path / "broken"), get_preset("tiny"), resume=True, progress=False)
    assert summary["step"] == 4
    straight, resumed = weights(tmp_path / "straight/checkpoints/step_0000004"), weights(tmp_path / "broken/checkpoints/step_0000004")
    for name in straight:
        torch.testing.assert_close(resumed[name], straight[name], rtol=1e-5, atol=1e-6, msg=name)


def test_sampler_resumes_mid_stream_and_splits_ranks():
    full = EpochSampler(10, seed=3)
    stream = [i for _, i in zip(range(25), iter(full))]
    assert sorted(stream[:10]) == list(range(10)) and stream[:10] != stream[10:20]
    assert [i for _, i in zip(range(12), iter(EpochSampler(10, seed=3, start=13)))] == stream[13:25]
    ranks = [[i for _, i in zip(range(5), iter(EpochSampler(10, seed=3, rank=r, world_size=2)))] for r in (0, 1)]
    assert ranks[0] == stream[0:10:2] and ranks[1] == stream[1:10:2]


def test_sampler_draws_repeated_frames_that_often_per_epoch_and_resumes():
    repeats = np.array([1, 3, 1, 1, 2])
    stream = [i for _, i in zip(range(16), iter(EpochSampler(5, seed=1, repeats=repeats)))]
    assert np.bincount(stream[:8], minlength=5).tolist() == repeats.tolist()
    assert [i for _, i in zip(range(6), iter(EpochSampler(5, seed=1, start=10, repeats=repeats)))] == stream[10:16]


def test_near_transitions_stay_inside_their_episode():
    # episode 0: frames 0-3 (closes at 2), episode 1: frames 4-7 (opens at 4, its first frame: not a change)
    gripper = np.array([-1, -1, 1, 1, -1, -1, -1, 1])
    ends = np.array([0, 0, 0, 1, 0, 0, 0, 1], dtype=bool)
    assert near_transitions(gripper, ends, radius=2).tolist() == [1, 1, 1, 1, 0, 1, 1, 1]


def test_statistics_mismatch_is_a_clear_error(demos, tmp_path):
    loop.train(cfg(demos, tmp_path / "run", steps=2), get_preset("tiny"), resume=False, progress=False)
    stats = json.loads((ckpt.last_checkpoint(tmp_path / "run") / "stats.json").read_text())
    stats["action"]["q99"] = [2.0] * 7
    model = PokeVLA(get_preset("tiny"), stats)
    with pytest.raises(CheckpointError, match="normalisation statistics"):
        model.load_checkpoint(ckpt.last_checkpoint(tmp_path / "run"))


def test_cli_refuses_an_output_directory_holding_another_run(demos, tmp_path, capsys):
    args = ["train", "--preset", "tiny", "--dataset", str(demos), "--out", str(tmp_path / "run"), "--steps", "1", "--batch-size", "2"]
    assert main(args) == 0
    before = weights(ckpt.last_checkpoint(tmp_path / "run"))
    assert main(args) == 2
    assert "holds another run" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path / "run"), "--resume", "--steps", "5"]) == 2
    assert "drop --steps" in capsys.readouterr().err
    after = weights(ckpt.last_checkpoint(tmp_path / "run"))
    assert all(torch.equal(before[k], after[k]) for k in before)  # nothing overwritten


def test_missing_features_and_bad_feature_map(demos, tmp_path):
    from conftest import synthetic_episode
    from pokevla.data.features import demo_features
    from pokevla.data.lerobot import DatasetWriter

    no_depth = {k: v for k, v in demo_features(32).items() if not k.startswith(("observation.depth", "observation.intrinsics", "observation.extrinsics"))}
    writer = DatasetWriter(tmp_path / "rgb_only", no_depth, fps=20, robot_type="panda")
    writer.add_episode({k: v for k, v in synthetic_episode(4, 0, 32).items() if k in no_depth}, task="pick up the bowl")
    with pytest.raises(DatasetError, match="lacks the feature.*observation.depth.primary"):
        loop.train(cfg(tmp_path / "rgb_only", tmp_path / "a"), get_preset("tiny"), resume=False, progress=False)
    without_geometry = get_preset("tiny")
    without_geometry.loss.geo_weight = 0.0  # the ablation flag: --loss.geo-weight 0
    assert loop.train(cfg(tmp_path / "rgb_only", tmp_path / "b", steps=1), without_geometry, resume=False, progress=False)["step"] == 1

    with pytest.raises(DatasetError, match="has no feature 'observation.nope'"):
        loop.train(cfg(demos, tmp_path / "c", feature_map=("observation.masks.wrist=observation.nope",)),
                   get_preset("tiny"), resume=False, progress=False)
    with pytest.raises(DatasetError, match="OURS=THEIRS"):
        loop.train(cfg(demos, tmp_path / "d", feature_map=("images",)), get_preset("tiny"), resume=False, progress=False)


def test_checkpoint_of_another_preset_is_refused(demos, tmp_path):
    loop.train(cfg(demos, tmp_path / "run", steps=2), get_preset("tiny"), resume=False, progress=False)
    other = get_preset("tiny")
    other.expert.num_layers = 3
    model = PokeVLA(other, json.loads((ckpt.last_checkpoint(tmp_path / "run") / "stats.json").read_text()))
    with pytest.raises(CheckpointError, match="different config"):
        model.load_checkpoint(ckpt.last_checkpoint(tmp_path / "run"))


def test_lr_schedule_warms_up_then_decays():
    factors = [loop.lr_factor(s, 100, 0.1) for s in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert factors[50] < factors[10] and factors[-1] < 0.01


def trainable(path):
    model = PokeVLA.from_pretrained(path, training_heads=True)
    return [p.detach() for p in model.parameters() if p.requires_grad]


def test_weight_averaging_saves_the_average_and_leaves_training_unchanged(demos, tmp_path):
    loop.train(cfg(demos, tmp_path / "plain", steps=3, save_every=1, keep_checkpoints=3), get_preset("tiny"),
               resume=False, progress=False)
    loop.train(cfg(demos, tmp_path / "ema", steps=3, save_every=1, keep_checkpoints=3, ema_decay=0.5), get_preset("tiny"),
               resume=False, progress=False)
    steps = {s: tmp_path / f"ema/checkpoints/step_000000{s}" for s in (1, 2, 3)}
    averaged = {s: trainable(p) for s, p in steps.items()}
    training = {s: ckpt.load_trainer_state(p)["training_weights"] for s, p in steps.items()}
    for w, plain in zip(training[3], trainable(tmp_path / "plain/checkpoints/step_0000003")):
        torch.testing.assert_close(w, plain, rtol=1e-5, atol=1e-6)  # the average never feeds back into training
    for s, weight in ((2, 1 - 2 / 11), (3, 1 - 3 / 12)):  # the warmed-up decay min(0.5, (1 + step) / (10 + step))
        for before, w, after in zip(averaged[s - 1], training[s], averaged[s]):
            torch.testing.assert_close(after, before + weight * (w - before), rtol=1e-4, atol=1e-6)
    assert any(not torch.equal(a, w) for a, w in zip(averaged[3], training[3]))


def test_a_run_with_weight_averaging_resumes_to_the_same_average(demos, tmp_path, monkeypatch):
    loop.train(cfg(demos, tmp_path / "straight", ema_decay=0.9), get_preset("tiny"), resume=False, progress=False)
    real_save = ckpt.save_checkpoint

    def save_then_crash(*args, **kwargs):
        real_save(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt, "save_checkpoint", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        loop.train(cfg(demos, tmp_path / "broken", ema_decay=0.9), get_preset("tiny"), resume=False, progress=False)
    monkeypatch.setattr(ckpt, "save_checkpoint", real_save)
    loop.train(cfg(demos, tmp_path / "broken", ema_decay=0.9), get_preset("tiny"), resume=True, progress=False)
    straight, resumed = (weights(tmp_path / f"{r}/checkpoints/step_0000004") for r in ("straight", "broken"))
    for name in straight:
        torch.testing.assert_close(resumed[name], straight[name], rtol=1e-5, atol=1e-6, msg=name)


def test_weight_averaging_cannot_resume_a_checkpoint_saved_without_it(demos, tmp_path):
    loop.train(cfg(demos, tmp_path / "run", steps=2), get_preset("tiny"), resume=False, progress=False)
    with pytest.raises(PokeVLAError, match="saved without weight averaging"):
        loop.train(cfg(demos, tmp_path / "run", ema_decay=0.9), get_preset("tiny"), resume=True, progress=False)
    with pytest.raises(ConfigError, match="--ema-decay"):
        cfg(demos, tmp_path / "x", ema_decay=1.0)
