"""The stage-2 training loop: AdamW, warm-up + cosine, clipping, accumulation, bf16, DDP, resume.

Launch with `pokevla train ...` on one process, or `torchrun --nproc-per-node N -m pokevla.cli train ...`
for DDP (each rank reads its share of the same seeded sample stream). Everything needed to resume is
in the run directory: `pokevla train --out RUN --resume` continues from the last checkpoint with the
same configuration, the same data order and the optimiser and scheduler state.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from pokevla.common.config import to_dict
from pokevla.common.errors import CheckpointError, PokeVLAError
from pokevla.common.io import append_jsonl, check_writable_dir, hold_dir, write_json_atomic
from pokevla.common.versions import machine, package_versions, usable_cores
from pokevla.data.coverage import coverage_warning
from pokevla.model.normalize import normalisation_warning
from pokevla.train import checkpoints as ckpt
from pokevla.train.config import TrainConfig
from pokevla.train.data import (EpochSampler, FrameDataset, collate, dataset_stats, near_transitions, parse_feature_map,
                                required_features)
from pokevla.train.validate import CHECKPOINT_RULE, open_loop_metrics, split_episodes


def lr_factor(step: int, total: int, warmup_ratio: float) -> float:
    """Linear warm-up over the first `warmup_ratio` of the steps, then cosine decay to 0."""
    warmup = max(1, int(total * warmup_ratio))
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


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


def _distributed() -> tuple[int, int, int]:
    """(rank, local_rank, world_size) from torchrun's environment; initialises the process group."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 0, 1
    import torch.distributed as dist

    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend)
    return dist.get_rank(), int(os.environ.get("LOCAL_RANK", "0")), world


def _device(name: str, local_rank: int) -> torch.device:
    if name == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise PokeVLAError(f"--train.device {name}: CUDA is not available on this machine; use cpu")
    return torch.device(name)


def dataset_identity(reader) -> dict:
    """What a checkpoint was trained on: the suite(s), instructions and render settings (checked by `pokevla eval`)."""
    generator = reader.info.get("pokevla", {}).get("generator") or {}
    return {"dataset": str(reader.root), "suite": generator.get("suite"), "tasks": sorted(set(reader.tasks.values())),
            "episodes": reader.info["total_episodes"], "frames": reader.info["total_frames"],
            # what evaluation must render to show the policy the images it learned from
            "render": {"resolution": generator.get("resolution"), "fast_render": generator.get("fast_render")}}


def train(train_cfg: TrainConfig, model_cfg, resume: bool, progress: bool = True) -> dict:
    """Runs (or resumes) a training run; returns a summary (final losses, throughput, checkpoint)."""
    from tqdm import tqdm

    from pokevla.data.reader import DatasetReader
    from pokevla.model.pokevla import PokeVLA

    torch.set_num_threads(train_cfg.threads or max(1, usable_cores() // 2))
    rank, local_rank, world = _distributed()
    run = check_writable_dir(train_cfg.out)
    if rank == 0:
        hold_dir(run)
    device = _device(train_cfg.device, local_rank)

    reader = DatasetReader(train_cfg.dataset, feature_map=parse_feature_map(train_cfg.feature_map))
    teacher = model_cfg.geometry.teacher if model_cfg.geo_enabled else None
    features = required_features(model_cfg.views, model_cfg.seg_enabled, teacher)
    train_frames, val_frames, val_ids = split_episodes(reader, train_cfg.val_episodes)
    dataset = FrameDataset(reader, features, model_cfg.expert.chunk_size, train_frames)
    val_set = FrameDataset(reader, features, model_cfg.expert.chunk_size, val_frames) if len(val_frames) else None
    identity = {**dataset_identity(reader), "held_out_episodes": val_ids}
    if train_cfg.cache_frames:
        held = reader.cache_images([f for f in features if reader.features[reader.feature_map.get(f, f)]["dtype"] == "image"],
                                   progress=progress and rank == 0)
        if rank == 0 and progress:
            print(f"frames decoded into memory: {held / 2**20:.0f} MiB")

    last, state = ckpt.resume_point(run, warn=lambda m: print(m, file=sys.stderr)) if resume else (None, None)
    stats = json.loads((last / "stats.json").read_text()) if last else dataset_stats(reader)
    torch.manual_seed(train_cfg.seed)
    model = PokeVLA(model_cfg, stats, training_heads=True).to(device)
    warnings = [w for w in (coverage_warning(reader.root), normalisation_warning(model.normalizer)) if w]
    if rank == 0:
        for w in warnings:
            print(f"warning: {w}", file=sys.stderr)
    model.processor.augment = color_jitter(train_cfg.color_jitter) if train_cfg.color_jitter > 0 else None
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, train_cfg.steps, train_cfg.warmup_ratio))
    step = 0
    if last is not None:
        model.load_checkpoint(last)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step = state["step"]
    if rank == 0:
        write_json_atomic(run / "run.json", {
            "model": to_dict(model_cfg), "train": asdict(train_cfg), "data": identity,
            "versions": package_versions(), "machine": machine(), "world_size": world,
            "checkpoint_rule": CHECKPOINT_RULE, "warnings": warnings,
        })

    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[local_rank] if device.type == "cuda" else None,
                                                        find_unused_parameters=True)
    per_step = train_cfg.effective_batch * world
    repeats = None
    if train_cfg.transition_window:
        gripper = reader.get("action", dataset.frames)[:, -1]
        near = near_transitions(gripper, dataset.episode_ends(), train_cfg.transition_window)
        repeats = np.where(near, train_cfg.transition_repeats, 1)
        if rank == 0:
            print(f"{int(near.sum())} of {len(near)} training frames lie within {train_cfg.transition_window} of a gripper "
                  f"change: each drawn {train_cfg.transition_repeats}x per epoch")
    sampler = EpochSampler(len(dataset), train_cfg.seed, start=step * per_step, rank=rank, world_size=world, repeats=repeats)
    loader = torch.utils.data.DataLoader(dataset, batch_size=train_cfg.batch_size, sampler=sampler, collate_fn=collate,
                                         num_workers=train_cfg.loader_workers, persistent_workers=train_cfg.loader_workers > 0)
    batches = iter(loader)  # draws a seed from the global RNG: restore the saved RNG states after it
    if last is not None:
        torch.set_rng_state(state["torch_rng"])
        random.setstate(state["python_rng"])
        np.random.set_state(state["numpy_rng"])
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" and train_cfg.bf16 else torch.autocast("cpu", enabled=False)

    tb = None
    if rank == 0:
        from torch.utils.tensorboard import SummaryWriter

        tb = SummaryWriter(str(run / "tensorboard"))
    bar = tqdm(total=train_cfg.steps, initial=step, desc="train", unit="step", disable=not progress or rank != 0)
    model.train()
    metrics: dict[str, float] = {}
    val_metrics: dict[str, float] = {}
    first_loss = None
    t_window, samples_window = time.perf_counter(), 0
    t_start, start_step = time.perf_counter(), step
    while step < train_cfg.steps:
        sums: dict[str, float] = {}
        for micro in range(train_cfg.grad_accum):
            batch = next(batches)
            sync = world == 1 or micro == train_cfg.grad_accum - 1
            with (net.no_sync() if not sync else contextlib.nullcontext()), autocast:
                loss, parts = net(batch)
                (loss / train_cfg.grad_accum).backward()
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v / train_cfg.grad_accum
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, train_cfg.grad_clip))
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        samples_window += per_step
        metrics = {**sums, "grad_norm": grad_norm, "lr": scheduler.get_last_lr()[0]}
        first_loss = first_loss if first_loss is not None else metrics["loss"]
        if not math.isfinite(metrics["loss"]):
            raise PokeVLAError(f"the loss became {metrics['loss']} at step {step}; lower --train.lr or check the dataset")
        if rank == 0:
            bar.update(1)
            bar.set_postfix(loss=f"{metrics['loss']:.4f}", act=f"{metrics['loss_action']:.4f}")
            if step % train_cfg.log_every == 0 or step == train_cfg.steps:
                elapsed = time.perf_counter() - t_window
                metrics["samples_per_s"] = samples_window / elapsed if elapsed > 0 else 0.0
                for k, v in metrics.items():
                    tb.add_scalar(f"train/{k}", v, step)
                t_window, samples_window = time.perf_counter(), 0
            if step % train_cfg.save_every == 0 or step == train_cfg.steps:
                trainer_state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "step": step,
                                 "torch_rng": torch.get_rng_state(), "python_rng": random.getstate(),
                                 "numpy_rng": np.random.get_state()}
                saved = ckpt.save_checkpoint(run, step, model, trainer_state, train_cfg.keep_checkpoints)
                write_json_atomic(saved / "training.json", {"step": step, "data": identity, "train": asdict(train_cfg)})
            if val_set is not None and (step % train_cfg.val_every == 0 or step == train_cfg.steps):
                val_metrics = open_loop_metrics(model, val_set)
                for k, v in val_metrics.items():
                    tb.add_scalar(k, v, step)
                append_jsonl(run / "val.jsonl", {"step": step, **{k: round(v, 5) for k, v in val_metrics.items()}})
                bar.write(f"step {step}: " + ", ".join(f"{k.removeprefix('val/')} {v:.4f}" for k, v in val_metrics.items()
                                                       if k in ("val/l1_arm", "val/gripper_acc", "val/gripper_acc_near_transition")))
    bar.close()
    if tb is not None:
        tb.close()
    seconds = time.perf_counter() - t_start
    done_steps = step - start_step
    return {
        "run": str(run), "step": step, "first_loss": first_loss, "final_metrics": metrics,
        "seconds": round(seconds, 1),
        "samples_per_s": round(done_steps * per_step / seconds, 2) if done_steps and seconds > 0 else None,
        "checkpoint": str(ckpt.last_checkpoint(run)) if rank == 0 else None,
        "val": val_metrics,
    }


def check_resume(run: Path, model_cfg, train_cfg: TrainConfig) -> None:
    """A run directory is resumed only with the configuration it was started with."""
    existing = ckpt.read_run(run)
    if existing is None:
        raise CheckpointError(f"{run} holds no training run to resume (no run.json)")
    if existing["model"] != json.loads(json.dumps(to_dict(model_cfg))):
        raise CheckpointError(f"{run} was started with another model configuration; resume it without model flags")
