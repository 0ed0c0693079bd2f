"""Typed configuration of the PokeVLA model and its two named presets.

`tiny` trains from scratch on a 2-core CPU (2M parameters: conv stems + 4-layer ViTs on 96 px crops, a 2-layer Qwen2,
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
    stem_channels: tuple[int, ...] = field(default=(), metadata={"help": "channels of the 3x3 stride-2 convolutions each encoder runs "
                                                                  "before its ViT (empty: plain patchify). For backbones trained from scratch"})
    crop_scale: float = field(default=0.9, metadata={"help": "area fraction of the square crop: random in training, centred at inference (1 disables)"})

    @property
    def stem_stride(self) -> int:
        return 2 ** len(self.stem_channels)


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
    # With images first a causal LM's visual states never see the instruction, and the expert must find
    # the named object through h_seg and the queries alone. Measured on object3 (docs/benchmarks.md):
    # prompt first 74.7% at step 6000, images first went to the wrong object at step 3000; on the
    # single-task quickstart images first gave 5/10, prompt first 0/10. Not an A/B at equal steps yet.
    prompt_first: bool = field(default=False, metadata={"help": "put the prompt before the image tokens, so the causal LM's "
                                                         "visual states h_v read the instruction (for multitask "
                                                         "models trained from scratch; default: LLaVA's images first)"})
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
    gripper: Literal["regression", "logit"] = field(default="regression", metadata={
        "help": "last action dim: L1 regression like the others (the paper), or a close/open logit trained with "
                "binary cross-entropy and executed as +-1 (a sharp decision that L1's median cannot make)"})
    execute_steps: int = field(default=0, metadata={"help": "actions of each predicted chunk executed before the next "
                                                            "prediction at evaluation (0: the whole chunk)"})


@dataclass
class NormConfig:
    state: NormMode = "quantiles"
    action: NormMode = "quantiles"
    normalize_gripper: bool = field(default=False, metadata={"help": "also normalise the last action dim (+-1)"})
    # A dimension that barely moves in the demonstrations (an axis-angle component of a hand that always
    # points down) would map evaluation's slightly different values to clipped +-1 from the first step.
    state_min_range: float = field(default=0.008, metadata={"help": "smallest half-range (or std) a state dim is scaled by (m, rad)"})
    action_min_range: float = field(default=0.04, metadata={"help": "smallest half-range (or std) an action dim is scaled by (action units)"})


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
        _check_counts(self)
        for name, (width, heads) in {
            "vision.dinov2": (self.vision.dinov2.hidden_size, self.vision.dinov2.num_heads),
            "vision.siglip": (self.vision.siglip.hidden_size, self.vision.siglip.num_heads),
            "llm": (self.llm.hidden_size, self.llm.num_heads), "expert": (self.expert.dim, self.expert.num_heads),
            "seg": (self.seg.dim, self.seg.num_heads),
        }.items():
            if width % heads:
                raise ConfigError(f"--{name}.num-heads {heads} does not divide its width {width}: each head takes an "
                                  f"equal share of it")
        if self.llm.num_heads % self.llm.num_kv_heads:
            raise ConfigError(f"--llm.num-kv-heads {self.llm.num_kv_heads} must divide --llm.num-heads {self.llm.num_heads}")
        if self.llm.hidden_size // self.llm.num_heads % 2:
            raise ConfigError(f"--llm.hidden-size / --llm.num-heads = {self.llm.hidden_size // self.llm.num_heads} must be "
                              "even: rotary position embeddings rotate pairs of channels")
        v = self.vision
        for name in ("dinov2", "siglip"):
            if v.image_size % getattr(v, name).patch_size:
                raise ConfigError(f"vision.image_size {v.image_size} is not a multiple of vision.{name}.patch_size")
        stride = v.stem_stride
        if any(getattr(v, n).patch_size % stride or getattr(v, n).pos_embed_size % stride for n in ("dinov2", "siglip")):
            raise ConfigError(f"vision.stem-channels: {len(v.stem_channels)} stride-2 convolutions (x{stride}) must divide "
                              "each encoder's patch-size and pos-embed-size")
        if v.stem_channels and (v.dinov2_path or v.siglip_path):
            raise ConfigError("vision.stem-channels replaces the encoders' patch embedding, which pretrained weights "
                              "were trained with; use it only without --vision.dinov2-path / --vision.siglip-path")
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
        if not 0 <= self.expert.execute_steps <= self.expert.chunk_size:
            raise ConfigError(f"expert.execute-steps {self.expert.execute_steps} must be 0 (whole chunk) to "
                              f"expert.chunk-size {self.expert.chunk_size}")

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


# Integer fields count things (pixels, layers, heads, channels, tokens, actions): at least 1, except these.
COUNT_MINIMUM = {"expert.execute_steps": 0, "geometry.seed": None}


def _check_counts(config, prefix: str = "") -> None:
    for f in dataclasses.fields(config):
        name, value = prefix + f.name, getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            _check_counts(value, name + ".")
            continue
        low = COUNT_MINIMUM.get(name, 1)
        for v in value if isinstance(value, tuple) else (value,):
            if low is not None and isinstance(v, int) and not isinstance(v, bool) and v < low:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least {low}, got {v}")


def tiny() -> PokeVLAConfig:
    vit = ViTConfig(hidden_size=64, num_layers=4, num_heads=4, intermediate_size=128, patch_size=16, pos_embed_size=128)
    return PokeVLAConfig(
        preset="tiny",
        # A conv stem (x8) then 2x2 patches: 16 px tokens, data-efficient where a plain 16 px patchify is
        # the weakest encoder at this data size. 96 px crops give 6x6 = 36 tokens per view; with a bare
        # instruction as the prompt (the byte tokenizer spends a token per character) and 2 LLM layers a
        # training step costs ~1/2.2 of 128 px, 8x8 tokens, the full prompt and 4 layers (measured).
        vision=VisionConfig(image_size=96, dinov2=vit, siglip=dataclasses.replace(vit), stem_channels=(16, 32, 64)),
        # vocab 258 = 256 bytes + <eos> + <pad> of the built-in byte tokenizer
        llm=LLMConfig(hidden_size=128, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=256,
                      vocab_size=258, rope_theta=10000.0, max_length=384, num_queries=8, prompt="{instruction}"),
        seg=SegmentationConfig(dim=32, depth=1, num_heads=2, mlp_dim=64),
        geometry=GeometryConfig(dim=32),
        # 2 actions per prediction, then a new one: the object3 policy from held-out scenes 21/24 against
        # 17/24 for the whole chunk of 8, then 150/150 against 98/150 from the official init states: the
        # blind tail of a chunk is where the hand drifts off a grasp (docs/benchmarks.md)
        expert=ExpertConfig(dim=128, num_layers=2, num_heads=4, gripper="logit", execute_steps=2),
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
