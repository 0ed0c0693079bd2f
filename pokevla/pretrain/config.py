"""Typed stage-1 (PokeVLM) training configuration: the data, what trains, the optimiser recipe.

The model itself is a `PokeVLAConfig` preset plus flags, the same as stage 2's. Defaults follow the
Prismatic / LLaVA fine-tuning recipe (AdamW, lr 2e-5, 3% warm-up then cosine, vision frozen);
LLaVA's projector-only alignment is `--train projector --lr 1e-3`. Both configs are printed when a
run starts and saved in its run.json.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pokevla.common.config import require_at_least
from pokevla.common.errors import ConfigError

Train = Literal["projector", "llm", "lora", "all"]  # what trains besides the projector (see `pokevla.pretrain.vlm`)


@dataclass
class PretrainConfig:
    data: str = field(default="", metadata={"help": "knowledge source(s) SPEC[,SPEC]: generated folders (their train "
                                                     "split; val.jsonl gives the held-out loss) or public JSON files"})
    mix: str = field(default="", metadata={"help": "a weighted mix SPEC=WEIGHT,SPEC=WEIGHT instead of --data "
                                                    "(each record drawn WEIGHT times per epoch on average)"})
    out: str = field(default="", metadata={"help": "run directory: checkpoints, logs, run.json"})
    train: Train = field(default="llm", metadata={
        "help": "what trains besides the projector: nothing (alignment), the language model fully or through "
                "LoRA (--lora.*), or everything including the vision encoders"})
    steps: int = field(default=1000, metadata={"help": "optimiser steps"})
    batch_size: int = field(default=8, metadata={"help": "samples per step and process (before accumulation)"})
    grad_accum: int = field(default=1, metadata={"help": "micro-batches accumulated per optimiser step"})
    lr: float = 2e-5
    weight_decay: float = 0.0
    warmup_ratio: float = field(default=0.03, metadata={"help": "fraction of steps of linear warm-up before the cosine decay"})
    grad_clip: float = 1.0
    seed: int = 0
    loader_workers: int = field(default=0, metadata={"help": "DataLoader worker processes (image decoding)"})
    val_every: int = field(default=500, metadata={"help": "steps between held-out losses on the data's val split (and at the end)"})
    val_records: int = field(default=256, metadata={"help": "held-out records per source the loss is measured on (0: all)"})
    save_every: int = 500
    keep_checkpoints: int = field(default=2, metadata={"help": "most recent checkpoints kept (the final one always)"})
    log_every: int = 10
    bf16: bool = field(default=True, metadata={"help": "bf16 autocast on CUDA (ignored on CPU)"})
    device: str = field(default="auto", metadata={"help": "auto | cpu | cuda | cuda:N"})
    threads: int = field(default=0, metadata={"help": "torch CPU threads; 0 = half the cores"})

    def __post_init__(self) -> None:
        at_least = {"steps": 1, "batch_size": 1, "grad_accum": 1, "val_every": 1, "save_every": 1, "val_records": 0,
                    "keep_checkpoints": 1, "log_every": 1, "loader_workers": 0, "threads": 0}
        require_at_least({f"--{name.replace('_', '-')}": (getattr(self, name), low) for name, low in at_least.items()})
        if not self.lr > 0:
            raise ConfigError(f"--lr must be positive, got {self.lr}")
        for name in ("weight_decay", "grad_clip"):
            if getattr(self, name) < 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"--warmup-ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.device not in ("auto", "cpu", "mps") and not self.device.startswith("cuda"):
            raise ConfigError(f"--device {self.device!r}: use auto, cpu, cuda or cuda:N")
        if self.data and self.mix:
            raise ConfigError("give --data or --mix, not both")
