"""Held-out episodes and the open-loop metrics training logs on them.

Whole episodes are held out (never single frames: neighbouring frames are near-duplicates), spread
evenly over the dataset so every task keeps its share. The metrics are diagnostics, not the verdict:
a policy is judged by closed-loop success, and `pokevla eval` evaluates the run's last checkpoint
(`CHECKPOINT_RULE`), whatever these numbers say (LIBERO's appendix E.2: validation loss misleads),
unless `pokevla select` chose another by rollouts from held-out scenes.
"""

from __future__ import annotations

import numpy as np
import torch

from pokevla.train.data import collate, near_transitions

CHECKPOINT_RULE = ("the last checkpoint of the run (end of the cosine schedule; with --ema-decay, its averaged weights); "
                   "held-out metrics are diagnostics only")
NEAR_TRANSITION = 4  # frames either side of a gripper change that count as "near a transition"


def split_episodes(reader, held_out: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """(training frame indices, held-out frame indices, held-out episode indices).

    `held_out` episodes evenly spaced over the dataset's episodes; at least one episode always trains."""
    episodes = reader.episodes
    held_out = min(held_out, max(0, len(episodes) - 1))
    stride = len(episodes) / held_out if held_out else 0.0  # >= 1, so the picks are distinct
    chosen = [int((k + 0.5) * stride) for k in range(held_out)]
    mask = np.zeros(len(reader), dtype=bool)
    for i in chosen:
        mask[episodes[i]["dataset_from_index"]:episodes[i]["dataset_to_index"]] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask), chosen


@torch.no_grad()
def open_loop_metrics(model, dataset, batch_size: int = 32) -> dict[str, float]:
    """The model's first predicted action of every held-out frame against the recorded one.

    Returns `val/l1_<d>` per action dim (normalised units, so dims compare), `val/l1_arm` (their
    mean over the arm dims), `val/gripper_acc` (sign agreement) and `val/gripper_acc_near_transition`
    (the same on frames within NEAR_TRANSITION of a gripper change: the rare decisions that matter).
    With several tasks in the dataset, `val/l1_arm_other_task` is `val/l1_arm` with every frame's
    instruction replaced by the next task's: about equal means the policy ignores the instruction,
    and a multitask policy then goes to the same object whatever it is told.
    """
    was_training = model.training
    model.eval()
    tasks = sorted(dataset.reader.tasks.values())
    other = {t: tasks[(i + 1) % len(tasks)] for i, t in enumerate(tasks)} if len(tasks) > 1 else None
    preds, swapped, targets = [], [], []
    for start in range(0, len(dataset), batch_size):
        batch = collate([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])
        inputs = model.processor.training(batch, model.device, augment=False)
        preds.append(_first_actions(model, inputs))
        targets.append(inputs["actions"][:, 0].float().cpu())
        if other is not None:
            told_other = model.processor.tokenize(dict(inputs, task=[other[t] for t in batch["task"]]))
            swapped.append(_first_actions(model, told_other))
    model.train(was_training)
    pred, target = torch.cat(preds).numpy(), torch.cat(targets).numpy()
    arm = np.abs(pred[:, :-1] - target[:, :-1]).mean(0)
    gripper_pred = pred[:, -1] > 0  # a logit's sign, or a +-1 regression's
    gripper_ok = gripper_pred == (target[:, -1] > 0)
    near = near_transitions(target[:, -1], dataset.episode_ends(), NEAR_TRANSITION)
    metrics = {f"val/l1_{d}": float(v) for d, v in enumerate(arm)}
    metrics["val/l1_arm"] = float(arm.mean())
    metrics["val/gripper_acc"] = float(gripper_ok.mean())
    if near.any():
        metrics["val/gripper_acc_near_transition"] = float(gripper_ok[near].mean())
    if swapped:
        metrics["val/l1_arm_other_task"] = float(np.abs(torch.cat(swapped).numpy()[:, :-1] - target[:, :-1]).mean())
    return metrics


def _first_actions(model, inputs: dict) -> torch.Tensor:
    """Processed inputs -> the model's normalised first action of each chunk (B, D_action), on the CPU."""
    return model.infer(inputs["pixel_values"], inputs["input_ids"], inputs["attention_mask"],
                       inputs["state"]).float()[:, 0].cpu()
