"""Vision: DINOv2 and SigLIP on the same image, patch features concatenated, MLP into the LLM width.

This is Prismatic's "DINO-SigLIP" fusion. Both encoders see the same [0, 1] image, each with its own
pixel normalisation. We take each encoder's last layer (after its final LayerNorm; DINOv2's CLS token
dropped) where Prismatic took the second-to-last block: every parameter we build is then used.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import Dinov2Config, Dinov2Model, SiglipVisionConfig, SiglipVisionModel

from pokevla.common.errors import ConfigError
from pokevla.model.config import ViTConfig, VisionConfig

# The pixel statistics both public checkpoints were trained with (ImageNet for DINOv2, 0.5 for SigLIP).
DINOV2_MEAN, DINOV2_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
SIGLIP_MEAN, SIGLIP_STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)


# With a conv stem the transformers ViT sees the stem's feature map, not pixels: its patch size and
# position-embedding grid are ours divided by the stem's stride, its input channels the stem's last.
def _input_geometry(vit: ViTConfig, stem_channels: tuple[int, ...]) -> dict:
    stride = 2 ** len(stem_channels)
    return dict(patch_size=vit.patch_size // stride, image_size=vit.pos_embed_size // stride,
                num_channels=stem_channels[-1] if stem_channels else 3)


def dinov2_config(vit: ViTConfig, stem_channels: tuple[int, ...] = ()) -> Dinov2Config:
    if vit.intermediate_size % vit.hidden_size:
        raise ConfigError("vision.dinov2.intermediate-size must be a multiple of its hidden-size (DINOv2's mlp_ratio)")
    return Dinov2Config(hidden_size=vit.hidden_size, num_hidden_layers=vit.num_layers,
                        num_attention_heads=vit.num_heads, mlp_ratio=vit.intermediate_size // vit.hidden_size,
                        use_mask_token=False, **_input_geometry(vit, stem_channels))


def siglip_config(vit: ViTConfig, stem_channels: tuple[int, ...] = ()) -> SiglipVisionConfig:
    return SiglipVisionConfig(hidden_size=vit.hidden_size, num_hidden_layers=vit.num_layers,
                              num_attention_heads=vit.num_heads, intermediate_size=vit.intermediate_size,
                              vision_use_head=False, **_input_geometry(vit, stem_channels))


def vit_config(hf: Dinov2Config | SiglipVisionConfig, stem_stride: int = 1) -> ViTConfig:
    """Our description of a transformers ViT config (the inverse of the two functions above)."""
    inter = hf.mlp_ratio * hf.hidden_size if isinstance(hf, Dinov2Config) else hf.intermediate_size
    return ViTConfig(hidden_size=hf.hidden_size, num_layers=hf.num_hidden_layers, num_heads=hf.num_attention_heads,
                     intermediate_size=inter, patch_size=hf.patch_size * stem_stride,
                     pos_embed_size=hf.image_size * stem_stride)


class ConvStem(nn.Module):
    """(B, 3, S, S) -> (B, C_k, S / 2^k, S / 2^k): k 3x3 stride-2 convolutions, GroupNorm, GELU.

    Early convolutions make small ViTs trained from scratch far more sample-efficient than a single
    16x16 patchify (Xiao et al. 2021; Octo's small stem; LIBERO's ViT-T): they give the ViT local
    edges and textures instead of raw pixels. The ViT's own patch embedding then patchifies this map.
    """

    def __init__(self, channels: tuple[int, ...]):
        super().__init__()
        layers, c_in = [], 3
        for c in channels:
            layers += [nn.Conv2d(c_in, c, 3, stride=2, padding=1, bias=False), nn.GroupNorm(min(8, c), c), nn.GELU()]
            c_in = c
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def load_dinov2_config(path: str) -> Dinov2Config:
    # the mask token is only for DINOv2's own pre-training; an unused parameter would get no gradient
    return Dinov2Config.from_pretrained(path, use_mask_token=False)


def load_siglip_config(path: str) -> SiglipVisionConfig:
    # SigLIP's pooling head is unused: we read the patch tokens (reads a full SiglipModel folder too)
    return SiglipVisionConfig.from_pretrained(path, vision_use_head=False)


class VisionEncoder(nn.Module):
    """(B, 3, S, S) images in [0, 1] -> (B, N, D_dinov2 + D_siglip) patch features, N = (S / patch)^2."""

    def __init__(self, cfg: VisionConfig, dinov2: Dinov2Config, siglip: SiglipVisionConfig, load_weights: bool):
        super().__init__()
        if load_weights and cfg.dinov2_path:
            self.dinov2 = Dinov2Model.from_pretrained(cfg.dinov2_path, config=dinov2, dtype=torch.float32)
        else:
            self.dinov2 = Dinov2Model(dinov2)
        if load_weights and cfg.siglip_path:
            self.siglip = SiglipVisionModel.from_pretrained(cfg.siglip_path, config=siglip, dtype=torch.float32)
        else:
            self.siglip = SiglipVisionModel(siglip)
        stem = cfg.stem_channels
        self.dinov2_stem = ConvStem(stem) if stem else nn.Identity()
        self.siglip_stem = ConvStem(stem) if stem else nn.Identity()
        # SigLIP interpolates its position embeddings only when asked; DINOv2 always does
        self.siglip_interpolate = siglip.image_size * cfg.stem_stride != cfg.image_size
        self.out_dim = dinov2.hidden_size + siglip.hidden_size
        for name, value in (("dinov2_mean", DINOV2_MEAN), ("dinov2_std", DINOV2_STD),
                            ("siglip_mean", SIGLIP_MEAN), ("siglip_std", SIGLIP_STD)):
            self.register_buffer(name, torch.tensor(value).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.to(self.dinov2.dtype)
        dino = self.dinov2(pixel_values=self.dinov2_stem((x - self.dinov2_mean) / self.dinov2_std)).last_hidden_state[:, 1:]
        sig = self.siglip(pixel_values=self.siglip_stem((x - self.siglip_mean) / self.siglip_std),
                          interpolate_pos_encoding=self.siglip_interpolate).last_hidden_state
        return torch.cat([dino, sig], dim=-1)


class Projector(nn.Module):
    """Prismatic's fused MLP projector: (..., D_vision) -> (..., D_llm)."""

    def __init__(self, vision_dim: int, llm_dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(vision_dim, 4 * vision_dim), nn.GELU(),
                                 nn.Linear(4 * vision_dim, llm_dim), nn.GELU(), nn.Linear(llm_dim, llm_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
