"""The learning loop learns: a tiny policy trained briefly beats a held-out action error that an
untrained one misses. The actions are a function of what the model sees (state, image, instruction),
so only a working pipeline (data, normalisation, encoders, action expert, gripper head) gets there."""

import numpy as np
import pytest

from pokevla.data.features import VIEWS, demo_features
from pokevla.data.lerobot import DatasetWriter, encode_png
from pokevla.model.config import get_preset
from pokevla.train import loop
from pokevla.train.config import TrainConfig

pytestmark = pytest.mark.slow
TASKS = ("move to the left", "move to the right")
GOALS = {TASKS[0]: np.array([-0.5, 0.0, 0.2]), TASKS[1]: np.array([0.5, 0.0, 0.2])}
RES = 32


def learnable_episode(length: int, task: str, rng: np.random.Generator) -> dict:
    """The hand walks towards the task's goal; the action points at the goal (language + state), and
    the gripper closes while a white square shows in the wrist view (vision)."""
    pos = rng.uniform(-0.6, 0.6, 3)
    states, actions, primaries, wrists = [], [], [], []
    close_from = int(rng.integers(length // 3, 2 * length // 3))
    for t in range(length):
        gripper = 1.0 if t >= close_from else -1.0
        move = np.clip((GOALS[task] - pos) * 3.0, -1, 1)
        states.append(np.concatenate([pos, [np.pi, 0.0, 0.0], [0.04, -0.04] if gripper < 0 else [0.01, -0.01]]))
        actions.append(np.concatenate([move, [0.0, 0.0, 0.0], [gripper]]))
        primary = rng.integers(0, 60, (RES, RES, 3), dtype=np.uint8)
        wrist = rng.integers(0, 60, (RES, RES, 3), dtype=np.uint8)
        if gripper > 0:
            wrist[8:24, 8:24] = 255
        primaries.append(encode_png(primary))
        wrists.append(encode_png(wrist))
        pos = pos + move * 0.05 + rng.normal(0, 0.01, 3)
    frames = {"observation.state": np.asarray(states, np.float32), "action": np.asarray(actions, np.float32),
              "observation.images.primary": primaries, "observation.images.wrist": wrists}
    k = np.array([[RES, 0, RES / 2], [0, RES, RES / 2], [0, 0, 1]], np.float32).reshape(-1)
    for view in VIEWS:
        frames[f"observation.masks.{view}"] = [encode_png(np.zeros((RES, RES), np.uint8))] * length
        frames[f"observation.depth.{view}"] = [encode_png(np.full((RES, RES), 1000, np.uint16))] * length
        frames[f"observation.intrinsics.{view}"] = np.tile(k, (length, 1))
        frames[f"observation.extrinsics.{view}"] = np.tile(np.eye(4, dtype=np.float32).reshape(-1), (length, 1))
    return frames


@pytest.fixture(scope="module")
def learnable(tmp_path_factory):
    root = tmp_path_factory.mktemp("learnable")
    writer = DatasetWriter(root, demo_features(RES), fps=20, robot_type="panda")
    rng = np.random.default_rng(0)
    for i in range(14):
        task = TASKS[i % 2]
        writer.add_episode(learnable_episode(30, task, rng), task=task, extra={"task_id": i % 2, "seed": i})
    return root


def held_out_metrics(root, out, steps):
    config = TrainConfig(dataset=str(root), out=str(out), steps=steps, batch_size=16, lr=1e-3, save_every=10_000,
                         val_episodes=4, val_every=10_000, warmup_ratio=0.05, threads=1)
    return loop.train(config, get_preset("tiny"), resume=False, progress=False)["val"]


def test_brief_training_beats_a_held_out_error_an_untrained_model_misses(learnable, tmp_path):
    untrained = held_out_metrics(learnable, tmp_path / "untrained", steps=1)
    trained = held_out_metrics(learnable, tmp_path / "trained", steps=250)
    # actions are normalised to [-1, 1]: 0.15 is a small error, which the first step is far from
    assert untrained["val/l1_arm"] > 0.15, untrained
    assert trained["val/l1_arm"] < 0.15, trained
    assert trained["val/gripper_acc"] > 0.9, trained
    # the goal is named only by the instruction: told the other task, the policy does worse (measured
    # 1.25x at 250 steps, 2.7x at 500; an instruction-blind policy scores the same either way)
    assert trained["val/l1_arm_other_task"] > trained["val/l1_arm"], trained
