"""The still frames before a gripper close: counted per close, reported per task, warned about in training."""

import numpy as np

from conftest import synthetic_episode
from pokevla.data.closing import closing_report, closing_waits, closing_warning
from pokevla.data.features import demo_features
from pokevla.data.lerobot import DatasetWriter
from pokevla.data.reader import DatasetReader
from pokevla.data.validate import dataset_info


def approach(moving: int, still: int, after: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """A hand moving 1 cm per frame, then standing still, closing on the last still frame."""
    z = np.concatenate([0.3 - 0.01 * np.arange(moving), np.full(still, 0.3 - 0.01 * moving), np.full(after, 0.3)])
    pos = np.stack([np.zeros_like(z), np.zeros_like(z), z], axis=1)
    grip = np.full(len(z), -1.0)
    grip[moving + still - 1:] = 1.0
    return pos, grip


def test_waits_count_the_still_frames_just_before_each_close():
    pos_a, grip_a = approach(moving=6, still=1)  # closes on arrival
    pos_b, grip_b = approach(moving=4, still=12)  # stalls for 11 frames, then closes
    pos = np.concatenate([pos_a, pos_b])
    grip = np.concatenate([grip_a, grip_b])
    episode = np.repeat([0, 1], [len(pos_a), len(pos_b)])
    assert closing_waits(pos, grip, episode).tolist() == [0, 11]
    # a close that opens again and closes twice counts twice; an episode that starts closed counts nothing
    grip2 = np.array([-1, 1, -1, -1, 1, 1, 1.0])
    pos2 = np.zeros((7, 3))
    assert closing_waits(pos2, grip2, np.zeros(7)).tolist() == [1, 4]
    assert closing_waits(pos2[:2], np.ones(2), np.zeros(2)).tolist() == []


def test_report_per_task_and_no_report_without_a_hand_position():
    pos, grip = approach(moving=4, still=9)
    state = np.concatenate([pos, np.zeros((len(pos), 5))], axis=1)
    action = np.concatenate([np.zeros((len(pos), 6)), grip[:, None]], axis=1)
    report = closing_report(state, action, np.zeros(len(pos)), np.zeros(len(pos)), {0: "pick the bowl"})
    assert report == {"closes": 1, "mean_wait_frames": 8.0, "per_task": {"pick the bowl": {"closes": 1, "mean": 8.0, "max": 8}}}
    assert closing_report(state[:, :2], action, np.zeros(len(pos)), np.zeros(len(pos)), {}) is None


def test_dataset_info_and_training_warning_name_the_waiting_task(tmp_path):
    writer = DatasetWriter(tmp_path / "ds", demo_features(8), fps=20, robot_type="panda")
    for i, (task, still) in enumerate([("pick the bowl", 1), ("pick the bottle", 12), ("pick the bottle", 10)]):
        pos, grip = approach(moving=4, still=still)
        frames = synthetic_episode(len(pos), i, 8)
        frames["observation.state"][:, :3] = pos
        frames["action"][:, -1] = grip
        writer.add_episode(frames, task=task)
    info = dataset_info(tmp_path / "ds")["closing"]
    assert info["per_task"]["pick the bowl"]["mean"] == 0.0 and info["per_task"]["pick the bottle"]["mean"] == 10.0
    warning = closing_warning(DatasetReader(tmp_path / "ds"))
    assert "10 frames" in warning and "'pick the bottle'" in warning and "pick the bowl" not in warning
