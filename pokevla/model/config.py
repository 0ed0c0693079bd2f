"""Typed configuration of the PokeVLA model and its two named presets.

`tiny` trains from scratch on a 2-core CPU (2M parameters: 4-layer ViTs on 128 px, a 4-layer Qwen2,
a byte-level tokenizer built in code). `1b` has the paper's sizes: DINOv2-L/14 + SigLIP-so400m/14
at 224 px and Qwen2.5-0.5B. Architecture fields describe the backbones when they are built from
scratch; when a `*_path` is given, that checkpoint's own `config.json` decides and these fields are
rewritten from it (see `backbones.resolve_backbones`), so a saved config describes its weights.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pokevla.common.config import add_dataclass_args, apply_overrides
from pokevla.common.errors import ConfigError

Finetune = Literal["full", "lora", "frozen"]
NormMode = Literal["quantiles", "mean_std", "min_max", "identity"]


@dataclass
class ViTConfig:
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    patch_size: int
    pos_embed_size: int = field(metadata={"help": "image size the position embeddings are stored at (interpolated)"})


@dataclass
class VisionConfig:
    image_size: int
    dinov2: ViTConfig
    siglip: ViTConfig
    dinov2_path: str | None = field(default=None, metadata={"help": "local Hugging Face folder of a Dinov2Model"})
    siglip_path: str | None = field(default=None, metadata={"help": "local folder of a SigLIP (vision) model"})
    finetune: Finetune = "full"
    crop_scale: float = field(default=0.9, metadata={"help": "area fraction of the square crop: random in training, centred at inference (1 disables)"})


@dataclass
class LLMConfig:
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    intermediate_size: int
    vocab_size: int
    rope_theta: float
    rms_norm_eps: float = 1e-6
    path: str | None = field(default=None, metadata={"help": "local folder of a Qwen2 causal LM (and its tokenizer)"})
    max_length: int = field(default=1024, metadata={"help": "context in tokens: images + prompt + <SEG> + queries"})
    num_queries: int = field(default=64, metadata={"help": "action query tokens appended to the prompt"})
    prompt: str = "In: What action should the robot take to {instruction}?\nOut:"
    finetune: Finetune = "full"


@dataclass
class LoRAConfig:
    rank: int = 64
    alpha: int = 64
    dropout: float = 0.0


@dataclass
class SegmentationConfig:
    dim: int = 256
    depth: int = 2
    num_heads: int = 8
    mlp_dim: int = 2048
    num_prompt_tokens: int = field(default=2, metadata={"help": "sparse prompt tokens made from h_seg"})


@dataclass
class GeometryConfig:
    teacher: Literal["depth", "precomputed", "model"] = "depth"
    dim: int = field(default=256, metadata={"help": "teacher feature size (read from the teacher for 'model')"})
    teacher_path: str | None = field(default=None, metadata={"help": "local HF vision backbone for teacher 'model'"})
    pos_scale_m: float = field(default=0.1, metadata={"help": "depth teacher: length scale of patch positions"})
    spread_scale_m: float = field(default=0.02, metadata={"help": "depth teacher: length scale of patch spreads"})
    seed: int = field(default=0, metadata={"help": "depth teacher: seed of the fixed Fourier features"})


@dataclass
class ExpertConfig:
    dim: int = 512
    num_layers: int = 4
    num_heads: int = 8
    mlp_ratio: int = 4
    chunk_size: int = 8
    action_dim: int = 7
    state_dim: int = 8


@dataclass
class NormConfig:
    state: NormMode = "quantiles"
    action: NormMode = "quantiles"
    normalize_gripper: bool = field(default=False, metadata={"help": "also normalise the last action dim (+-1)"})


@dataclass
class LossConfig:
    seg_weight: float = field(default=0.2, metadata={"help": "0 switches the segmentation head off"})
    geo_weight: float = field(default=0.4, metadata={"help": "0 switches geometry alignment off"})
    focal_weight: float = 1.0
    kl_weight: float = 1.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0


@dataclass
class PokeVLAConfig:
    preset: Literal["tiny", "1b"]
    vision: VisionConfig
    llm: LLMConfig
    lora: LoRAConfig = field(default_factory=LoRAConfig)
    seg: SegmentationConfig = field(default_factory=SegmentationConfig)
    geometry: GeometryConfig = field(default_factory=GeometryConfig)
    expert: ExpertConfig = field(default_factory=ExpertConfig)
    norm: NormConfig = field(default_factory=NormConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    views: tuple[str, ...] = ("primary", "wrist")

    def __post_init__(self) -> None:
        v = self.vision
        for name in ("dinov2", "siglip"):
            if v.image_size % getattr(v, name).patch_size:
                raise ConfigError(f"vision.image_size {v.image_size} is not a multiple of vision.{name}.patch_size")
        if v.dinov2.patch_size != v.siglip.patch_size:
            raise ConfigError("vision.dinov2.patch_size and vision.siglip.patch_size must be equal: "
                              "features are concatenated per patch")
        if not 0.25 <= v.crop_scale <= 1.0:
            raise ConfigError(f"vision.crop_scale {v.crop_scale} is out of range; use 0.25-1 (1 disables cropping)")
        if self.geometry.teacher == "precomputed" and v.crop_scale < 1.0 and self.loss.geo_weight > 0:
            raise ConfigError("geometry.teacher 'precomputed' holds features of the whole image's patches, which a crop "
                              "shifts; use --vision.crop-scale 1 with it")
        if self.geometry.teacher == "model" and not self.geometry.teacher_path:
            raise ConfigError("geometry.teacher 'model' needs --geometry.teacher-path")
        if self.loss.seg_weight < 0 or self.loss.geo_weight < 0:
            raise ConfigError("loss weights must be >= 0")
        if not self.views:
            raise ConfigError("views: at least one camera view is needed")

    @property
    def grid(self) -> int:
        """Patches per side of each view's patch grid."""
        return self.vision.image_size // self.vision.dinov2.patch_size

    @property
    def seg_enabled(self) -> bool:
        return self.loss.seg_weight > 0

    @property
    def geo_enabled(self) -> bool:
        return self.loss.geo_weight > 0


def tiny() -> PokeVLAConfig:
    vit = ViTConfig(hidden_size=64, num_layers=4, num_heads=4, intermediate_size=128, patch_size=16, pos_embed_size=128)
    return PokeVLAConfig(
        preset="tiny",
        vision=VisionConfig(image_size=128, dinov2=vit, siglip=dataclasses.replace(vit)),
        # vocab 258 = 256 bytes + <eos> + <pad> of the built-in byte tokenizer
        llm=LLMConfig(hidden_size=128, num_layers=4, num_heads=4, num_kv_heads=2, intermediate_size=256,
                      vocab_size=258, rope_theta=10000.0, max_length=384, num_queries=8),
        seg=SegmentationConfig(dim=32, depth=1, num_heads=2, mlp_dim=64),
        geometry=GeometryConfig(dim=32),
        expert=ExpertConfig(dim=128, num_layers=2, num_heads=4),
    )


def one_b() -> PokeVLAConfig:
    return PokeVLAConfig(
        preset="1b",
        vision=VisionConfig(
            image_size=224,
            # dinov2-large ships position embeddings for 518 px; they are interpolated to 224
            dinov2=ViTConfig(hidden_size=1024, num_layers=24, num_heads=16, intermediate_size=4096, patch_size=14,
                             pos_embed_size=518),
            siglip=ViTConfig(hidden_size=1152, num_layers=27, num_heads=16, intermediate_size=4304, patch_size=14,
                             pos_embed_size=224),
            finetune="lora",
        ),
        llm=LLMConfig(hidden_size=896, num_layers=24, num_heads=14, num_kv_heads=2, intermediate_size=4864,
                      vocab_size=151936, rope_theta=1000000.0, max_length=1024, num_queries=64, finetune="lora"),
    )


PRESETS = {"tiny": tiny, "1b": one_b}


def check_local_folder(flag: str, path: str) -> str:
    """`path` must be a local Hugging Face folder: nothing is ever downloaded."""
    folder = Path(path)
    if not folder.is_dir():
        raise ConfigError(f"--{flag} {path}: no such folder (a local Hugging Face checkpoint is needed)")
    if not (folder / "config.json").is_file():
        raise ConfigError(f"--{flag} {path}: no config.json there; is it a Hugging Face model folder?")
    return path


def get_preset(name: str) -> PokeVLAConfig:
    if name not in PRESETS:
        raise ConfigError(f"unknown model preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]()


def add_config_args(parser: argparse.ArgumentParser) -> None:
    """Adds `--preset` and one flag per config field (`--vision.dinov2-path`, `--loss.seg-weight`, ...)."""
    add_dataclass_args(parser, PokeVLAConfig)


def config_from_args(args: argparse.Namespace) -> PokeVLAConfig:
    """The named preset (`--preset`, required) with every other flag the user typed applied."""
    preset = getattr(args, "cfg__preset", None)
    if preset is None:
        raise ConfigError(f"--preset is required: one of {', '.join(PRESETS)}")
    return apply_overrides(get_preset(preset), args)
