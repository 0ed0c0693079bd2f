"""Demonstration generation end to end with the real simulator and expert (kept small)."""

import numpy as np
import pytest

from pokevla.common.errors import DatasetError
from pokevla.data import generate
from pokevla.data.generate import GenerateConfig, generate_demos
from pokevla.data.reader import DatasetReader
from pokevla.data.replay import load_replay
from pokevla.data.validate import validate_dataset

pytestmark = pytest.mark.sim
RES = 64


def config(out, episodes):
    return GenerateConfig(suite="libero_object", task_ids=(0,), episodes_per_task=episodes, out=str(out),
                          resolution=RES, workers=1)


def test_interrupted_generation_resumes_without_loss_or_duplicates(tmp_path, monkeypatch):
    out = tmp_path / "demos"
    real_write = generate._write_episode
    written = []

    def write_then_interrupt(*args, **kwargs):
        real_write(*args, **kwargs)
        written.append(1)
        if len(written) == 1:
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C right after the first episode

    monkeypatch.setattr(generate, "_write_episode", write_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        generate_demos(config(out, 2), progress=False)
    monkeypatch.setattr(generate, "_write_episode", real_write)

    summary = generate_demos(config(out, 2), progress=False)
    assert summary["episodes"] == 2 and summary["new_episodes"] == 1
    assert validate_dataset(out, decode_all=True) == []

    reader = DatasetReader(out)
    seeds = [load_replay(out, i).seed for i in range(2)]
    assert len(set(seeds)) == 2  # the resumed run did not redo the first episode's scene
    assert reader.task(0) == "pick up the alphabet soup and place it in the basket"
    mask = reader.get("observation.masks.primary", 0)
    assert mask.shape == (RES, RES) and (mask > 0).any()
    assert 0.3 < float(np.median(reader.get("observation.depth.primary", 0))) < 3.0
    assert generate_demos(config(out, 2), progress=False)["new_episodes"] == 0  # complete: nothing to do

    # the two episodes start from different robot poses and object placements, as evaluation's init
    # states do (flattened state = time, 7 arm joints, 2 fingers, then the objects' free joints)
    first, second = (load_replay(out, i).sim_states[0] for i in range(2))
    assert np.abs(first[1:8] - second[1:8]).max() > 0.005  # rad: the official spread is 0.02 per joint
    assert np.abs(first[10:40] - second[10:40]).max() > 0.005  # objects moved

    # rung (a) of the success ladder: the executed actions, replayed open loop from the episodes' own
    # rebuilt scenes, succeed again
    from pokevla.eval.evaluate import EvalConfig, evaluate
    from pokevla.eval.policy import PolicySpec

    replayed = evaluate(EvalConfig("libero_object", (0,), trials=2, out=str(tmp_path / "replay"), videos_per_task=0,
                                   starts=str(out)), PolicySpec("replay", str(out)), progress=False)
    assert replayed["overall"]["successes"] == 2
    assert any("not the official init states" in note for note in replayed["protocol_deviations"])


def test_replay_reproduces_stored_frames(tmp_path):
    from pokevla.sim.env import EnvConfig, LiberoEnv

    out = tmp_path / "demos"
    generate_demos(config(out, 1), progress=False)
    reader = DatasetReader(out)
    replay = load_replay(out, 0)
    last = len(reader) - 1
    with LiberoEnv(EnvConfig("libero_object", 0, resolution=RES)) as env:
        obs = replay.observe(env, last)
    np.testing.assert_array_equal(obs["observation.images.primary"], reader.get("observation.images.primary", last))
    # the stored state is the one the expert observed, sampled inside the last 2 ms physics substep
    np.testing.assert_allclose(obs["observation.state"], reader.get("observation.state", last), atol=5e-3)
    np.testing.assert_allclose(replay.actions, np.stack([reader.get("action", i) for i in range(len(reader))]))


def test_action_noise_labels_states_with_the_expert_commands(tmp_path):
    out = tmp_path / "demos"
    cfg = GenerateConfig(suite="libero_object", task_ids=(0,), episodes_per_task=1, out=str(out),
                         resolution=RES, workers=1, action_noise=0.3)
    generate_demos(cfg, progress=False)
    reader = DatasetReader(out)
    labels = np.stack([reader.get("action", i) for i in range(len(reader))])
    executed = load_replay(out, 0).actions
    assert reader.info["pokevla"]["generator"]["action_noise"] == 0.3
    assert np.abs(executed[:, :3] - labels[:, :3]).mean() > 0.05  # translations were perturbed
    np.testing.assert_array_equal(executed[:, 3:], labels[:, 3:])  # rotation and gripper were not
    with pytest.raises(DatasetError, match="action_noise"):  # resuming with other settings is refused
        generate_demos(GenerateConfig(**{**cfg.__dict__, "action_noise": 0.0}), progress=False)
