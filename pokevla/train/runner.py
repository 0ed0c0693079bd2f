"""The training loop both stages share: AdamW, warm-up + cosine, accumulation, clipping, weight EMA, bf16, DDP,
resume.

A stage (`pokevla train` on demonstrations, `pokevla pretrain` on conversations) supplies its model,
its sample stream, what its run records and its held-out check through a `Stage`; this module owns
the rest: the run folder's lock, the optimiser and schedule, atomic checkpoints (`checkpoints.py`)
holding the optimiser, scheduler and RNG states, TensorBoard, the progress bar. A resumed run
continues the exact stream it stopped in: the stage's sampler starts at the sample position of the
last checkpoint and every RNG is restored before the first step.

    ctx = start(cfg)                   # threads, DDP, the locked run folder, the device
    ... the stage reads its data ...
    summary = fit(cfg, ctx, stage, resume, progress)
"""

from __future__ import annotations

import collections
import contextlib
import math
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Protocol

import numpy as np
import torch
from torch import nn

from pokevla.common.errors import PokeVLAError
from pokevla.common.io import append_jsonl, check_writable_dir, hold_dir, write_json_atomic
from pokevla.common.versions import usable_cores
from pokevla.train import checkpoints as ckpt
from pokevla.train.config import LoopConfig

# Steps whose losses the run's summary averages, at its start and at its end: batches are grouped by
# length, so one batch's loss swings with what that batch holds (short yes/no answers score far lower).
LOSS_WINDOW = 20


def loss_summary(summary: dict) -> str:
    """The loss line of a run's summary: mean training loss over its last and its first LOSS_WINDOW steps."""
    def shown(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.4f}"

    return (f"loss {shown(summary['last_loss'])} over the last {LOSS_WINDOW} steps "
            f"(first {LOSS_WINDOW}: {shown(summary['first_loss'])})")


class Stage(Protocol):
    """What one training stage hands the shared loop."""

    name: str  # the progress bar's label

    def build(self, last: Path | None, device: torch.device) -> nn.Module:
        """The model on `device` (seeded); with `last`, its weights loaded from that checkpoint.
        Calling it on a batch gives (loss, metrics as floats with "loss"); it has `save_pretrained`."""

    def run_info(self, world: int) -> dict:
        """The run's identity, written to run.json before the first step."""

    def batches(self, start: int, rank: int, world: int) -> Iterator[Any]:
        """The endless batch stream of this rank, from sample position `start` of the shared stream."""

    def postfix(self, metrics: dict[str, float]) -> dict[str, str]:
        """The progress bar's figures."""

    def after_save(self, saved: Path, step: int) -> None:
        """Anything the stage adds to a checkpoint folder just written."""

    def validate(self, model: nn.Module) -> dict[str, float] | None:
        """Held-out metrics (keys "val/..."), or None when the run holds nothing out."""

    def val_line(self, step: int, metrics: dict[str, float]) -> str:
        """The line printed under the progress bar after a held-out check."""


@dataclass
class Context:
    rank: int
    local_rank: int
    world: int
    run: Path
    device: torch.device


def lr_factor(step: int, total: int, warmup_ratio: float) -> float:
    """Linear warm-up over the first `warmup_ratio` of the steps, then cosine decay to 0."""
    warmup = max(1, int(total * warmup_ratio))
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


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


def start(cfg: LoopConfig) -> Context:
    """CPU threads, the DDP process group, the run folder (locked by rank 0) and the device."""
    torch.set_num_threads(cfg.threads or max(1, usable_cores() // 2))
    rank, local_rank, world = _distributed()
    run = check_writable_dir(cfg.out)
    if rank == 0:
        hold_dir(run)
    return Context(rank, local_rank, world, run, _device(cfg.device, local_rank))


class WeightAverage:
    """Exponential moving average of the trainable weights, the copy a run saves and checks.

    The decay warms up as min(decay, (1 + step) / (10 + step)), so a short run does not keep its random
    start. While swapped in (`averaged()`), the model holds the average and the training weights wait in
    `shadow`; a checkpoint's model folder holds the average and its trainer state the training weights.
    """

    def __init__(self, params: list[nn.Parameter], decay: float):
        self.params, self.decay = params, decay
        self.shadow = [p.detach().clone() for p in params]

    @torch.no_grad()
    def update(self, step: int) -> None:
        weight = 1.0 - min(self.decay, (1 + step) / (10 + step))
        for average, p in zip(self.shadow, self.params):
            average.lerp_(p.detach(), weight)

    @torch.no_grad()
    def _swap(self) -> None:
        for average, p in zip(self.shadow, self.params):
            held = p.detach().clone()
            p.copy_(average)
            average.copy_(held)

    @contextlib.contextmanager
    def averaged(self):
        self._swap()
        try:
            yield
        finally:
            self._swap()

    def training_weights(self) -> list[torch.Tensor]:
        return [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def resume(self, training_weights: list[torch.Tensor] | None, checkpoint: Path) -> None:
        """The model was loaded from a checkpoint's folder (the average): keep that as the average and
        put the trainer state's training weights back into the model."""
        if training_weights is None or len(training_weights) != len(self.params):
            raise PokeVLAError(f"{checkpoint}: its trainer state holds no training weights for --ema-decay; "
                               f"it was saved without weight averaging and cannot resume a run with it")
        for p, w in zip(self.params, training_weights):
            p.copy_(w)


def _trainer_state(optimizer, scheduler, step: int) -> dict:
    return {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "step": step,
            "torch_rng": torch.get_rng_state(), "python_rng": random.getstate(), "numpy_rng": np.random.get_state()}


def fit(cfg: LoopConfig, ctx: Context, stage: Stage, resume: bool, progress: bool = True) -> dict:
    """Runs (or resumes) the steps of a run; returns a summary (final losses, throughput, checkpoint)."""
    from tqdm import tqdm

    last, state = ckpt.resume_point(ctx.run, warn=lambda m: print(m, file=sys.stderr)) if resume else (None, None)
    model = stage.build(last, ctx.device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, cfg.steps, cfg.warmup_ratio))
    ema = WeightAverage(params, cfg.ema_decay) if cfg.ema_decay > 0 else None
    averaged = ema.averaged if ema is not None else contextlib.nullcontext
    step = 0
    if last is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step = state["step"]
        if ema is not None:
            ema.resume(state.get("training_weights"), last)
    if ctx.rank == 0:
        write_json_atomic(ctx.run / "run.json", stage.run_info(ctx.world))

    net = model
    if ctx.world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[ctx.local_rank] if ctx.device.type == "cuda" else None, find_unused_parameters=True)
    per_step = cfg.batch_size * cfg.grad_accum * ctx.world
    batches = stage.batches(step * per_step, ctx.rank, ctx.world)  # a DataLoader iterator draws from the global RNG:
    if last is not None:                                           # restore the saved RNG states after it
        torch.set_rng_state(state["torch_rng"])
        random.setstate(state["python_rng"])
        np.random.set_state(state["numpy_rng"])
    on_cuda = ctx.device.type == "cuda" and cfg.bf16
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if on_cuda else torch.autocast("cpu", enabled=False)

    tb = None
    if ctx.rank == 0:
        from torch.utils.tensorboard import SummaryWriter

        tb = SummaryWriter(str(ctx.run / "tensorboard"))
    bar = tqdm(total=cfg.steps, initial=step, desc=stage.name, unit="step", disable=not progress or ctx.rank != 0)
    model.train()
    metrics: dict[str, float] = {}
    val_metrics: dict[str, float] = {}
    first_losses: list[float] = []
    last_losses: collections.deque[float] = collections.deque(maxlen=LOSS_WINDOW)
    t_window, samples_window = time.perf_counter(), 0
    t_start, start_step = time.perf_counter(), step
    while step < cfg.steps:
        sums: dict[str, float] = {}
        for micro in range(cfg.grad_accum):
            batch = next(batches)
            sync = ctx.world == 1 or micro == cfg.grad_accum - 1
            with (net.no_sync() if not sync else contextlib.nullcontext()), autocast:
                loss, parts = net(batch)
                (loss / cfg.grad_accum).backward()
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v / cfg.grad_accum
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip))
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if ema is not None:
            ema.update(step)
        step += 1
        samples_window += per_step
        metrics = {**sums, "grad_norm": grad_norm, "lr": scheduler.get_last_lr()[0]}
        if len(first_losses) < LOSS_WINDOW:
            first_losses.append(metrics["loss"])
        last_losses.append(metrics["loss"])
        if not math.isfinite(metrics["loss"]):
            raise PokeVLAError(f"the loss became {metrics['loss']} at step {step}; lower --lr or check the dataset")
        if ctx.rank != 0:
            continue
        bar.update(1)
        bar.set_postfix(**stage.postfix(metrics))
        if step % cfg.log_every == 0 or step == cfg.steps:
            elapsed = time.perf_counter() - t_window
            metrics["samples_per_s"] = samples_window / elapsed if elapsed > 0 else 0.0
            for k, v in metrics.items():
                tb.add_scalar(f"train/{k}", v, step)
            t_window, samples_window = time.perf_counter(), 0
        if step % cfg.save_every == 0 or step == cfg.steps:
            trainer_state = _trainer_state(optimizer, scheduler, step)
            if ema is not None:
                trainer_state["training_weights"] = ema.training_weights()
            with averaged():
                saved = ckpt.save_checkpoint(ctx.run, step, model, trainer_state, cfg.keep_checkpoints)
            stage.after_save(saved, step)
        if step % cfg.val_every == 0 or step == cfg.steps:
            with averaged():
                held_out = stage.validate(model)
            if held_out is not None:
                val_metrics = held_out
                for k, v in val_metrics.items():
                    tb.add_scalar(k, v, step)
                append_jsonl(ctx.run / "val.jsonl", {"step": step, **{k: round(v, 5) for k, v in val_metrics.items()}})
                bar.write(stage.val_line(step, val_metrics))
    bar.close()
    if tb is not None:
        tb.close()
    seconds = time.perf_counter() - t_start
    done_steps = step - start_step
    return {
        "run": str(ctx.run), "step": step, "final_metrics": metrics,
        "first_loss": float(np.mean(first_losses)) if first_losses else None,  # means over LOSS_WINDOW steps
        "last_loss": float(np.mean(last_losses)) if last_losses else None,
        "seconds": round(seconds, 1),
        "samples_per_s": round(done_steps * per_step / seconds, 2) if done_steps and seconds > 0 else None,
        "checkpoint": str(ckpt.last_checkpoint(ctx.run)) if ctx.rank == 0 else None,
        "val": val_metrics,
    }
