"""Typed training configurations: the recipe both stages share, and stage 2's own fields.

`LoopConfig` holds what the shared loop (`pokevla.train.runner`) reads: the optimiser recipe and the
run's bookkeeping. Each stage's config extends it (`TrainConfig` here for demonstrations,
`pokevla.pretrain.config.PretrainConfig` for conversations) and may give its fields other defaults.
The model's own configuration is a `PokeVLAConfig` preset plus flags; both are saved in the run
directory (`run.json`) and into every checkpoint, and printed when a run starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pokevla.common.config import require_at_least
from pokevla.common.errors import ConfigError


@dataclass
class LoopConfig:
    out: str = field(default="", metadata={"help": "run directory: checkpoints, logs, run.json"})
    steps: int = field(default=2000, metadata={"help": "optimiser steps"})
    batch_size: int = field(default=8, metadata={"help": "samples per step and process (before accumulation)"})
    grad_accum: int = field(default=1, metadata={"help": "micro-batches accumulated per optimiser step"})
    lr: float = 1e-4
    weight_decay: float = 0.0
    warmup_ratio: float = field(default=0.1, metadata={"help": "fraction of steps of linear warm-up before the cosine decay"})
    grad_clip: float = 1.0
    ema_decay: float = field(default=0.0, metadata={"help": "exponential moving average of the weights (e.g. 0.999): checkpoints, "
                                                              "held-out checks and evaluation use the average; 0 disables"})
    seed: int = 0
    loader_workers: int = field(default=0, metadata={"help": "DataLoader worker processes (image decoding)"})
    val_every: int = field(default=500, metadata={"help": "steps between held-out evaluations (and at the end)"})
    save_every: int = 500
    keep_checkpoints: int = field(default=2, metadata={"help": "most recent checkpoints kept (the final one always)"})
    log_every: int = 10
    bf16: bool = field(default=True, metadata={"help": "bf16 autocast on CUDA (ignored on CPU)"})
    device: str = field(default="auto", metadata={"help": "auto | cpu | cuda | cuda:N"})
    threads: int = field(default=0, metadata={"help": "torch CPU threads; 0 = half the cores (OpenMP threads that share cores with other work slow to a crawl)"})

    def __post_init__(self) -> None:
        at_least = {"steps": 1, "batch_size": 1, "grad_accum": 1, "val_every": 1, "save_every": 1,
                    "keep_checkpoints": 1, "log_every": 1, "loader_workers": 0, "threads": 0}
        at_least.update(self._minimums())
        require_at_least({f"--{name.replace('_', '-')}": (getattr(self, name), low) for name, low in at_least.items()})
        if not self.lr > 0:
            raise ConfigError(f"--lr must be positive, got {self.lr}")
        for name in ("weight_decay", "grad_clip", *self._non_negative()):
            if getattr(self, name) < 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.ema_decay < 1:
            raise ConfigError(f"--ema-decay must be in [0, 1) (0 disables), got {self.ema_decay}")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"--warmup-ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.device not in ("auto", "cpu", "mps") and not self.device.startswith("cuda"):
            raise ConfigError(f"--device {self.device!r}: use auto, cpu, cuda or cuda:N")

    def _minimums(self) -> dict[str, int]:
        """A stage's own integer fields -> their lowest allowed value."""
        return {}

    def _non_negative(self) -> tuple[str, ...]:
        """A stage's own float fields that must be >= 0."""
        return ()

    @property
    def effective_batch(self) -> int:
        return self.batch_size * self.grad_accum


@dataclass
class TrainConfig(LoopConfig):
    dataset: str = field(default="", metadata={"help": "LeRobot v3 dataset directory"})
    loader_workers: int = field(default=0, metadata={"help": "DataLoader worker processes (PNG decoding; not needed with cache_frames)"})
    cache_frames: bool = field(default=True, metadata={"help": "decode every image, mask and depth frame into memory once at the start"})
    val_episodes: int = field(default=2, metadata={"help": "whole episodes held out for open-loop metrics (0: none)"})
    transition_window: int = field(default=0, metadata={"help": "frames either side of a gripper open/close change that are drawn transition_repeats times per epoch (0: every frame once)"})
    transition_repeats: int = field(default=3, metadata={"help": "draws per epoch of a frame within transition_window of a gripper change"})
    color_jitter: float = field(default=0.2, metadata={"help": "brightness/contrast/saturation jitter strength; 0 disables"})
    feature_map: tuple[str, ...] = field(default=(), metadata={"help": "OURS=THEIRS feature renames for other LeRobot datasets"})
    init: str | None = field(default=None, metadata={"help": "start from this stage-1 run or checkpoint (pokevla pretrain): its "
                                                               "encoders, projector, language model and tokenizer"})

    def _minimums(self) -> dict[str, int]:
        return {"val_episodes": 0, "transition_window": 0, "transition_repeats": 1}

    def _non_negative(self) -> tuple[str, ...]:
        return ("color_jitter",)
