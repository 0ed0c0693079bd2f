"""How long the demonstrations' hand stands still before each gripper close.

A demonstrator that closes only after the hand has been still for a while (a stall timer, a
settling counter) labels a run of identical-looking frames "keep going" and then one of them
"close": no single observation says which. A policy cloned from such data hovers at the grasp with
the fingers open. Measured on libero_object: an expert whose grasps stalled on the table or on a
bottle's shoulders before closing gave 9.6-11.2 still frames per close on average, and those tasks
were the ones a trained policy failed most.
"""

from __future__ import annotations

import numpy as np

STILL_M = 0.001  # the hand moved less than 1 mm between two frames (2 cm/s at 20 fps)
WAIT_WARN_FRAMES = 5.0  # mean wait above which the training log warns (0.25 s at 20 fps)


def closing_waits(hand_pos: np.ndarray, gripper: np.ndarray, episode: np.ndarray) -> np.ndarray:
    """hand_pos (N, 3) metres, gripper (N,) commands (> 0 closes), episode (N,) ids, frames in order
    -> the number of still frames just before each open-to-close change (int, one per close)."""
    waits = []
    for e in np.unique(episode):
        pos, closing = hand_pos[episode == e], gripper[episode == e] > 0
        moved = np.linalg.norm(np.diff(pos, axis=0), axis=1) >= STILL_M  # moved[i]: from frame i to i+1
        for t in np.flatnonzero(closing[1:] & ~closing[:-1]) + 1:
            before = moved[:t][::-1]  # the steps into frame t, the nearest first
            waits.append(int(np.argmax(before)) if before.any() else t)
    return np.asarray(waits, dtype=np.int64)


def closing_report(state: np.ndarray, action: np.ndarray, episode: np.ndarray, task: np.ndarray,
                   task_names: dict[int, str]) -> dict | None:
    """state (N, S) starting with the hand position, action (N, A) ending with the gripper command,
    episode and task (N,) ids -> closes and their waits, overall and per task; None when the state
    has no room for a hand position."""
    if state.ndim != 2 or state.shape[1] < 3 or len(state) == 0:
        return None
    per_task, every = {}, []
    for t in np.unique(task):
        rows = task == t
        waits = closing_waits(state[rows, :3], action[rows, -1], episode[rows])
        if len(waits):
            every.append(waits)
            per_task[task_names.get(int(t), str(t))] = {"closes": len(waits), "mean": round(float(waits.mean()), 1),
                                                         "max": int(waits.max())}
    waits = np.concatenate(every) if every else np.zeros(0)
    return {"closes": len(waits), "mean_wait_frames": round(float(waits.mean()), 1) if len(waits) else 0.0,
            "per_task": per_task}


def reader_closing_report(reader) -> dict | None:
    """`closing_report` of a `DatasetReader` (its feature map applied); None without state or action."""
    if not (reader.has("observation.state") and reader.has("action")):
        return None
    rows = np.arange(len(reader))
    return closing_report(reader.get("observation.state", rows), reader.get("action", rows),
                          reader.get("episode_index", rows).reshape(-1), reader.get("task_index", rows).reshape(-1),
                          reader.tasks)


def closing_warning(reader) -> str | None:
    """One line for the training log when, in some task, the hand waits still before closing."""
    report = reader_closing_report(reader)
    if report is None:
        return None
    slow = {t: v for t, v in report["per_task"].items() if v["mean"] > WAIT_WARN_FRAMES}
    if not slow:
        return None
    task, worst = max(slow.items(), key=lambda kv: kv[1]["mean"])
    return (f"the hand stands still for {worst['mean']:.0f} frames on average before closing in {task!r}"
            f"{f' (and {len(slow) - 1} more task(s))' if len(slow) > 1 else ''}: no single frame shows when to close, "
            "so a policy learns to hover; fix the demonstrator's closing rule (`pokevla dataset info` lists every task)")
