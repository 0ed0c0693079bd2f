"""Stage 2: post-training PokeVLA on demonstrations, through the shared loop of `runner.py`
(AdamW, warm-up + cosine, clipping, accumulation, bf16, DDP, resume).

Launch with `pokevla train ...` on one process, or `torchrun --nproc-per-node N -m pokevla.cli train ...`
for DDP (each rank reads its share of the same seeded sample stream). Everything needed to resume is
in the run directory: `pokevla train --out RUN --resume` continues from the last checkpoint with the
same configuration, the same data order and the optimiser and scheduler state.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from pokevla.common.config import to_dict
from pokevla.common.errors import CheckpointError
from pokevla.common.io import write_json_atomic
from pokevla.common.versions import machine, package_versions
from pokevla.data.closing import closing_warning
from pokevla.data.coverage import coverage_warning
from pokevla.model.normalize import normalisation_warning
from pokevla.train import checkpoints as ckpt
from pokevla.train import runner
from pokevla.train.config import TrainConfig
from pokevla.train.data import (EpochSampler, FrameDataset, collate, dataset_stats, near_transitions, parse_feature_map,
                                required_features)
from pokevla.train.runner import lr_factor  # noqa: F401  (the schedule, imported from here by callers)
from pokevla.train.validate import CHECKPOINT_RULE, open_loop_metrics, split_episodes


def color_jitter(strength: float):
    """Per-image brightness / contrast / saturation jitter of pixel_values (B, V, 3, S, S) in [0, 1]."""

    def jitter(x: torch.Tensor) -> torch.Tensor:
        shape = (x.shape[0], x.shape[1], 1, 1, 1)
        rand = lambda: 1.0 + (torch.rand(shape, device=x.device) * 2 - 1) * strength
        x = x * rand()  # brightness
        mean = x.mean(dim=(2, 3, 4), keepdim=True)
        x = (x - mean) * rand() + mean  # contrast
        grey = x.mean(dim=2, keepdim=True)
        x = (x - grey) * rand() + grey  # saturation
        return x.clamp(0, 1)

    return jitter


def dataset_identity(reader) -> dict:
    """What a checkpoint was trained on: the suite(s), instructions and render settings (checked by `pokevla eval`)."""
    generator = reader.info.get("pokevla", {}).get("generator") or {}
    return {"dataset": str(reader.root), "suite": generator.get("suite"), "tasks": sorted(set(reader.tasks.values())),
            "episodes": reader.info["total_episodes"], "frames": reader.info["total_frames"],
            # what evaluation must render to show the policy the images it learned from
            "render": {"resolution": generator.get("resolution"), "fast_render": generator.get("fast_render")}}


class DemonstrationStage:
    """Stage 2 for the shared loop: PokeVLA on the frames of a LeRobot dataset.

    With `train.init` the new model starts from a stage-1 PokeVLM checkpoint: its backbones,
    tokenizer, encoders, projector and language model (`pokevla.pretrain.transfer`); a resumed run
    rebuilds from its own last checkpoint and never reads that folder again.
    """

    name = "train"

    def __init__(self, train_cfg: TrainConfig, model_cfg, reader, dataset: FrameDataset, val_set: FrameDataset | None,
                 identity: dict, rank: int, init: dict | None):
        self.cfg, self.model_cfg, self.reader, self.dataset, self.val_set = train_cfg, model_cfg, reader, dataset, val_set
        self.identity, self.rank, self.init = identity, rank, init
        self.warnings: list[str] = []

    def build(self, last: Path | None, device: torch.device):
        from pokevla.model.pokevla import PokeVLA

        stats = json.loads((last / "stats.json").read_text()) if last else dataset_stats(self.reader)
        torch.manual_seed(self.cfg.seed)
        if self.cfg.init:
            model = self._build_from_stage1(last, stats)
        else:
            model = PokeVLA(self.model_cfg, stats, training_heads=True)
        model = model.to(device)
        self.warnings = [w for w in (coverage_warning(self.reader.root), closing_warning(self.reader),
                                     normalisation_warning(model.normalizer)) if w]
        if self.rank == 0:
            for w in self.warnings:
                print(f"warning: {w}", file=sys.stderr)
        model.processor.augment = color_jitter(self.cfg.color_jitter) if self.cfg.color_jitter > 0 else None
        if last is not None:
            model.load_checkpoint(last)
        return model

    def _build_from_stage1(self, last: Path | None, stats: dict):
        from pokevla.model.pokevla import PokeVLA
        from pokevla.pretrain import transfer

        def make(config, backbones, tokenizer) -> PokeVLA:
            return PokeVLA(config, stats, training_heads=True, backbones=backbones, load_weights=False,
                           tokenizer=tokenizer)

        model, self.model_cfg, started = transfer.build_on_stage1(self.cfg.init, last, self.model_cfg, make)
        self.init = started or self.init
        return model

    def run_info(self, world: int) -> dict:
        info = {"model": to_dict(self.model_cfg), "train": asdict(self.cfg), "data": self.identity,
                "versions": package_versions(), "machine": machine(), "world_size": world,
                "checkpoint_rule": CHECKPOINT_RULE, "warnings": self.warnings}
        return info if self.init is None else {**info, "init": self.init}

    def batches(self, start: int, rank: int, world: int):
        cfg, repeats = self.cfg, None
        if cfg.transition_window:
            gripper = self.reader.get("action", self.dataset.frames)[:, -1]
            near = near_transitions(gripper, self.dataset.episode_ends(), cfg.transition_window)
            repeats = np.where(near, cfg.transition_repeats, 1)
            if rank == 0:
                print(f"{int(near.sum())} of {len(near)} training frames lie within {cfg.transition_window} of a gripper "
                      f"change: each drawn {cfg.transition_repeats}x per epoch")
        sampler = EpochSampler(len(self.dataset), cfg.seed, start=start, rank=rank, world_size=world, repeats=repeats)
        loader = torch.utils.data.DataLoader(self.dataset, batch_size=cfg.batch_size, sampler=sampler, collate_fn=collate,
                                             num_workers=cfg.loader_workers, persistent_workers=cfg.loader_workers > 0)
        return iter(loader)

    def postfix(self, metrics: dict[str, float]) -> dict[str, str]:
        return {"loss": f"{metrics['loss']:.4f}", "act": f"{metrics['loss_action']:.4f}"}

    def after_save(self, saved: Path, step: int) -> None:
        write_json_atomic(saved / "training.json", {"step": step, "data": self.identity, "train": asdict(self.cfg)})

    def validate(self, model) -> dict[str, float] | None:
        return None if self.val_set is None else open_loop_metrics(model, self.val_set)

    def val_line(self, step: int, metrics: dict[str, float]) -> str:
        return f"step {step}: " + ", ".join(f"{k.removeprefix('val/')} {v:.4f}" for k, v in metrics.items()
                                            if k in ("val/l1_arm", "val/gripper_acc", "val/gripper_acc_near_transition"))


def train(train_cfg: TrainConfig, model_cfg, resume: bool, progress: bool = True) -> dict:
    """Runs (or resumes) a training run; returns a summary (final losses, throughput, checkpoint)."""
    from pokevla.data.reader import DatasetReader

    ctx = runner.start(train_cfg)
    reader = DatasetReader(train_cfg.dataset, feature_map=parse_feature_map(train_cfg.feature_map))
    teacher = model_cfg.geometry.teacher if model_cfg.geo_enabled else None
    features = required_features(model_cfg.views, model_cfg.seg_enabled, teacher)
    train_frames, val_frames, val_ids = split_episodes(reader, train_cfg.val_episodes)
    dataset = FrameDataset(reader, features, model_cfg.expert.chunk_size, train_frames)
    val_set = FrameDataset(reader, features, model_cfg.expert.chunk_size, val_frames) if len(val_frames) else None
    identity = {**dataset_identity(reader), "held_out_episodes": val_ids}
    if train_cfg.cache_frames:
        held = reader.cache_images([f for f in features if reader.features[reader.feature_map.get(f, f)]["dtype"] == "image"],
                                   progress=progress and ctx.rank == 0)
        if ctx.rank == 0 and progress:
            print(f"frames decoded into memory: {held / 2**20:.0f} MiB")
    recorded = ckpt.read_run(ctx.run) if resume else None
    stage = DemonstrationStage(train_cfg, model_cfg, reader, dataset, val_set, identity, ctx.rank,
                               init=(recorded or {}).get("init"))
    return runner.fit(train_cfg, ctx, stage, resume, progress)

def check_resume(run: Path, model_cfg, train_cfg: TrainConfig) -> None:
    """A run directory is resumed only with the configuration it was started with."""
    existing = ckpt.read_run(run)
    if existing is None:
        raise CheckpointError(f"{run} holds no training run to resume (no run.json)")
    if existing["model"] != json.loads(json.dumps(to_dict(model_cfg))):
        raise CheckpointError(f"{run} was started with another model configuration; resume it without model flags")
