"""Typed stage-1 (PokeVLM) training configuration: the data, what trains, the optimiser recipe.

The model itself is a `PokeVLAConfig` preset plus flags, the same as stage 2's. Defaults follow the
Prismatic / LLaVA fine-tuning recipe (AdamW, lr 2e-5, 3% warm-up then cosine, vision frozen);
LLaVA's projector-only alignment is `--train projector --lr 1e-3`. Both configs are printed when a
run starts and saved in its run.json.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pokevla.common.errors import ConfigError
from pokevla.train.config import LoopConfig

Train = Literal["projector", "llm", "lora", "all"]  # what trains besides the projector (see `pokevla.pretrain.vlm`)


@dataclass
class PretrainConfig(LoopConfig):
    data: str = field(default="", metadata={"help": "knowledge source(s) SPEC[,SPEC]: generated folders (their train "
                                                     "split; val.jsonl gives the held-out loss) or public JSON files"})
    mix: str = field(default="", metadata={"help": "a weighted mix SPEC=WEIGHT,SPEC=WEIGHT instead of --data "
                                                    "(each record drawn WEIGHT times per epoch on average)"})
    train: Train = field(default="llm", metadata={
        "help": "what trains besides the projector: nothing (alignment), the language model fully or through "
                "LoRA (--lora.*), or everything including the vision encoders"})
    init: str | None = field(default=None, metadata={
        "help": "start from this stage-1 run or checkpoint (its weights, backbones and tokenizer) with a new optimiser "
                "and schedule: LLaVA's alignment then fine-tuning, or more pre-training on a new mixture"})
    augment_crop: float = field(default=1.0, metadata={
        "help": "least area fraction of a random crop of pointing and box records, answers rewritten to match "
                "(e.g. 0.5; 1: no crop; see pokevla.pretrain.augment)"})
    augment_color: float = field(default=0.0, metadata={
        "help": "brightness / contrast / saturation jitter of every training image (e.g. 0.2; 0: none)"})
    patch_names: float = field(default=0.0, metadata={
        "help": "weight of the auxiliary loss naming the object under each image patch, from the point_object "
                "masks (e.g. 0.5; 0: off; see pokevla.pretrain.patch_names)"})
    steps: int = field(default=1000, metadata={"help": "optimiser steps"})
    lr: float = 2e-5
    warmup_ratio: float = field(default=0.03, metadata={"help": "fraction of steps of linear warm-up before the cosine decay"})
    val_every: int = field(default=500, metadata={"help": "steps between held-out losses on the data's val split (and at the end)"})
    val_records: int = field(default=256, metadata={"help": "held-out records per source the loss is measured on (0: all)"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.data and self.mix:
            raise ConfigError("give --data or --mix, not both")
        if not 0.1 <= self.augment_crop <= 1.0:
            raise ConfigError(f"--augment-crop {self.augment_crop} is out of range; use 0.1-1 (1: no crop)")
        if self.patch_names < 0:
            raise ConfigError(f"--patch-names {self.patch_names} is negative; use a weight >= 0 (0: off)")
        if not 0.0 <= self.augment_color < 1.0:
            raise ConfigError(f"--augment-color {self.augment_color} is out of range; use 0 (none) to below 1")

    def _minimums(self) -> dict[str, int]:
        return {"val_records": 0}
