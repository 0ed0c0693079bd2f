"""Geometry alignment: a projector P on h_v, pulled towards per-patch 3D teacher features.

L_geo = 1 - cos(P(h_v), f_geo), averaged over the patches that have a target. Used in training only.
Teachers share one interface (`GeometryTeacher`: batch, view -> features (B, N, D), valid (B, N)):

- `depth`: from simulator ground truth. Every pixel is unprojected with its metric depth and the
  intrinsics, moved to the robot base frame with the extrinsics (the same frame for every view),
  and pooled over the model's patch grid into the patch's mean position and spread. A fixed seeded
  random Fourier map turns these 6 numbers into D features whose cosine similarity approximates a
  Gaussian kernel between patches (length scales `pos_scale_m`, `spread_scale_m`).
- `precomputed`: features a dataset supplies as `observation.geometry.<view>` (B, N, D).
- `model`: a frozen local Hugging Face vision backbone run on the raw image (AutoModel). The paper
  uses VGGT, which transformers 5.23 does not provide; any AutoModel checkpoint whose output has
  `last_hidden_state` patch tokens (DINOv2, SigLIP vision, ...) works, and its weights are never
  saved in our checkpoints.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from pokevla.common.errors import ConfigError
from pokevla.model.config import GeometryConfig, check_local_folder
from pokevla.model.processor import FLOATS, Batch, expect


class GeometryTeacher(nn.Module):
    """Target features of one view: forward(batch, view) -> features (B, N, dim), valid (B, N) bool."""

    dim: int


def patch_points(depth: torch.Tensor, K: torch.Tensor, T: torch.Tensor,
                 grid: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """depth (B, H, W) m, K (B, 3, 3), T (B, 4, 4) camera->base -> per-patch mean and std of the base-frame
    points (B, grid^2, 3) each, and valid (B, grid^2): the patch has at least one pixel with depth."""
    B, H, W = depth.shape
    v, u = torch.meshgrid(torch.arange(H, device=depth.device, dtype=torch.float32),
                          torch.arange(W, device=depth.device, dtype=torch.float32), indexing="ij")
    ok = torch.isfinite(depth) & (depth > 0)
    d = torch.where(ok, depth, 0.0)
    # p_base = R K^-1 (d [u, v, 1]) + t: one (3, 3) map per sample, applied channels-first
    scaled = torch.stack([u * d, v * d, d], 1)  # (B, 3, H, W)
    A = T[:, :3, :3].float() @ torch.linalg.inv(K.float())
    w = ok.float().unsqueeze(1)  # (B, 1, H, W)
    x = (torch.einsum("bij,bjhw->bihw", A, scaled) + T[:, :3, 3, None, None].float()) * w  # zero where invalid
    pooled = F.adaptive_avg_pool2d(torch.cat([w, x, x * x], 1), grid)  # one pass over the 7 channels
    frac = pooled[:, :1]
    mean = pooled[:, 1:4] / frac.clamp_min(1e-8)
    sq = pooled[:, 4:7] / frac.clamp_min(1e-8)
    std = (sq - mean * mean).clamp_min(0).sqrt()
    flat = lambda t: t.flatten(2).transpose(1, 2)
    return flat(mean), flat(std), flat(frac)[..., 0] > 0


class DepthTeacher(GeometryTeacher):
    def __init__(self, cfg: GeometryConfig, grid: int):
        super().__init__()
        if cfg.dim % 2:
            raise ConfigError(f"geometry.dim must be even for the depth teacher's Fourier features, got {cfg.dim}")
        self.dim, self.grid = cfg.dim, grid
        g = torch.Generator().manual_seed(cfg.seed)
        self.register_buffer("freqs", torch.randn(cfg.dim // 2, 6, generator=g, device="cpu"), persistent=False)
        scales = [cfg.pos_scale_m] * 3 + [cfg.spread_scale_m] * 3
        self.register_buffer("scales", torch.tensor(scales), persistent=False)

    def describe(self, stats: torch.Tensor) -> torch.Tensor:
        """(..., 6) patch mean and std in metres -> (..., dim) unit-norm Fourier features."""
        proj = (stats / self.scales.to(stats)) @ self.freqs.T.to(stats)
        return torch.cat([proj.cos(), proj.sin()], -1) / math.sqrt(self.dim // 2)

    def forward(self, batch: Batch, view: str) -> tuple[torch.Tensor, torch.Tensor]:
        image = batch[f"observation.images.{view}"]
        sizes = {"B": image.shape[0], "H": image.shape[1]}
        depth = expect(batch, f"observation.depth.{view}", FLOATS, ("B", "H", "H"), sizes)
        K = expect(batch, f"observation.intrinsics.{view}", FLOATS, ("B", 3, 3), sizes)
        T = expect(batch, f"observation.extrinsics.{view}", FLOATS, ("B", 4, 4), sizes)
        with torch.autocast(depth.device.type, enabled=False):  # metric geometry needs float32, not bf16
            mean, std, valid = patch_points(depth.float(), K, T, self.grid)
            return self.describe(torch.cat([mean, std], -1).float()), valid


class PrecomputedTeacher(GeometryTeacher):
    def __init__(self, dim: int, grid: int):
        super().__init__()
        self.dim, self.grid = dim, grid

    def forward(self, batch: Batch, view: str) -> tuple[torch.Tensor, torch.Tensor]:
        B = batch[f"observation.images.{view}"].shape[0]
        f = expect(batch, f"observation.geometry.{view}", FLOATS, ("B", self.grid ** 2, self.dim), {"B": B})
        return f.float(), torch.ones(f.shape[:2], dtype=torch.bool, device=f.device)


def _teacher_preprocessing(path: Path) -> tuple[list[float], list[float]]:
    file = path / "preprocessor_config.json"
    try:
        pre = json.loads(file.read_text())
        return pre["image_mean"], pre["image_std"]
    except (OSError, ValueError, KeyError) as e:
        raise ConfigError(f"geometry teacher {path}: need {file.name} with image_mean and image_std ({e})") from None


class ModelTeacher(GeometryTeacher):
    """A frozen vision backbone; its patch tokens are resampled to the model's patch grid."""

    def __init__(self, path: str, grid: int):
        super().__init__()
        from transformers import AutoConfig, AutoModel

        try:
            full_config = AutoConfig.from_pretrained(check_local_folder("geometry.teacher-path", path))
            if torch.empty(0).device.type == "meta":  # `model info` counts parameters: nothing to load
                self.model = AutoModel.from_config(full_config)
            else:
                self.model = AutoModel.from_pretrained(path, dtype=torch.float32)
        except (OSError, ValueError) as e:
            raise ConfigError(f"--geometry.teacher-path {path}: {e}") from None
        self.model.requires_grad_(False).eval()
        config = getattr(full_config, "vision_config", full_config)
        self.dim, self.grid = config.hidden_size, grid
        self.size, self.patch = int(config.image_size), int(config.patch_size)
        mean, std = _teacher_preprocessing(Path(path))
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> "ModelTeacher":
        super().train(mode)
        self.model.eval()  # a frozen teacher never uses dropout
        return self

    @torch.no_grad()
    def forward(self, batch: Batch, view: str) -> tuple[torch.Tensor, torch.Tensor]:
        image = batch[f"observation.images.{view}"].permute(0, 3, 1, 2).float() / 255.0
        x = F.interpolate(image, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False)
        tokens = self.model(pixel_values=(x - self.mean) / self.std).last_hidden_state
        g = self.size // self.patch
        fmap = tokens[:, -g * g:].transpose(1, 2).unflatten(-1, (g, g))  # prefix tokens (CLS, registers) first
        fmap = F.interpolate(fmap, size=(self.grid, self.grid), mode="bilinear", antialias=True, align_corners=False)
        features = fmap.flatten(2).transpose(1, 2)
        return features, torch.ones(features.shape[:2], dtype=torch.bool, device=features.device)


def build_teacher(cfg: GeometryConfig, grid: int) -> GeometryTeacher:
    if cfg.teacher == "depth":
        return DepthTeacher(cfg, grid)
    if cfg.teacher == "precomputed":
        return PrecomputedTeacher(cfg.dim, grid)
    return ModelTeacher(cfg.teacher_path, grid)


def teacher_dim(cfg: GeometryConfig) -> int:
    """The feature size the projector must produce (read from the checkpoint for a model teacher)."""
    if cfg.teacher != "model":
        return cfg.dim
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(check_local_folder("geometry.teacher-path", cfg.teacher_path))
    except (OSError, ValueError) as e:
        raise ConfigError(f"--geometry.teacher-path {cfg.teacher_path}: {e}") from None
    return getattr(config, "vision_config", config).hidden_size


def cosine_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """pred, target (..., N, D), valid (..., N) -> mean of 1 - cos over the valid patches."""
    cos = F.cosine_similarity(pred.float(), target.float(), dim=-1)
    w = valid.float()
    return ((1 - cos) * w).sum() / w.sum().clamp_min(1.0)


class GeometryAlignment(nn.Module):
    """h_v (B, V, N, d) + the batch -> L_geo; the teacher's weights are not part of our checkpoints."""

    def __init__(self, cfg: GeometryConfig, llm_dim: int, grid: int, views: tuple[str, ...]):
        super().__init__()
        self.views = views
        self.teacher = build_teacher(cfg, grid)
        if self.teacher.dim != cfg.dim:
            raise ConfigError(f"geometry.dim is {cfg.dim} but the teacher gives {self.teacher.dim} features")
        self.projector = nn.Sequential(nn.Linear(llm_dim, llm_dim), nn.GELU(), nn.Linear(llm_dim, cfg.dim))

    def forward(self, h_v: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        targets, valid = zip(*(self.teacher(batch, v) for v in self.views))
        target, valid = torch.stack(targets, 1), torch.stack(valid, 1)
        loss = cosine_loss(self.projector(h_v), target, valid)
        return loss, {"geo_valid_frac": valid.float().mean()}
