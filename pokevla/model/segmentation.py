"""Goal-aware segmentation: h_seg prompts a SAM-style decoder to predict the goal mask of every view.

One `<SEG>` embedding is the prompt for all views (LISA's "embedding as mask", made multi-view), so it
must describe the goal objects consistently across cameras. Each view's image embedding is its
last-layer visual hidden states h_v. The decoder is SAM's: a prompt encoder (h_seg -> sparse prompt
tokens; a dense prompt that is a learned "no mask" embedding or an embedded mask), a two-way
transformer, and a hypernetwork over upscaled image features. It runs twice with shared weights:
the coarse pass has no mask prompt, the fine pass is prompted with the coarse logits (SAM's
iterative refinement). Both passes are supervised with sigmoid focal + KL, at the model's image size.
Used in training only.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from pokevla.model.config import LossConfig, SegmentationConfig
from pokevla.model.layers import MLP, Attention, LayerNorm2d


class TwoWayBlock(nn.Module):
    """SAM's block: tokens self-attend, tokens attend to the image, MLP, the image attends to the tokens."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, first: bool):
        super().__init__()
        self.first = first  # the first block's tokens carry no positional term yet
        self.self_attn, self.to_image, self.to_tokens = (Attention(dim, heads) for _ in range(3))
        self.mlp = MLP([dim, mlp_dim, dim])
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(4))

    def forward(self, tokens, image, token_pe, image_pe):
        q = tokens if self.first else tokens + token_pe
        attn = self.self_attn(q, q, tokens)
        tokens = self.norms[0](attn if self.first else tokens + attn)
        tokens = self.norms[1](tokens + self.to_image(tokens + token_pe, image + image_pe, image))
        tokens = self.norms[2](tokens + self.mlp(tokens))
        image = self.norms[3](image + self.to_tokens(image + image_pe, tokens + token_pe, tokens))
        return tokens, image


class RandomPositionEmbedding(nn.Module):
    """SAM's dense positional encoding: random Fourier features of normalised (x, y) coordinates."""

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("gauss", torch.randn(2, dim // 2))

    def forward(self, n: int) -> torch.Tensor:
        """-> (n * n, dim) for an n x n grid, row-major."""
        c = (torch.arange(n, device=self.gauss.device, dtype=self.gauss.dtype) + 0.5) / n * 2 - 1
        yx = torch.stack(torch.meshgrid(c, c, indexing="ij"), -1).flip(-1).reshape(-1, 2)  # (x, y) per cell
        proj = 2 * math.pi * yx @ self.gauss
        return torch.cat([proj.sin(), proj.cos()], -1)


class GoalSegmentationHead(nn.Module):
    """h_seg (B, d) + h_v (B, V, N, d) -> (coarse, fine) goal-mask logits, each (B, V, 4n, 4n), N = n * n."""

    def __init__(self, cfg: SegmentationConfig, llm_dim: int, grid: int):
        super().__init__()
        C, self.grid, self.num_prompts = cfg.dim, grid, cfg.num_prompt_tokens
        # prompt encoder: LISA's projection of the <SEG> state into sparse prompt tokens, plus dense prompts
        self.prompt = MLP([llm_dim, llm_dim, cfg.num_prompt_tokens * C])
        self.no_mask = nn.Parameter(torch.randn(C) * 0.02)
        self.mask_embed = nn.Sequential(nn.Conv2d(1, C // 4, 2, stride=2), LayerNorm2d(C // 4), nn.GELU(),
                                        nn.Conv2d(C // 4, C, 2, stride=2))
        self.image_proj = nn.Sequential(nn.LayerNorm(llm_dim), nn.Linear(llm_dim, C))
        self.pe = RandomPositionEmbedding(C)
        # mask decoder
        self.mask_token = nn.Parameter(torch.randn(1, C) * 0.02)
        self.blocks = nn.ModuleList(TwoWayBlock(C, cfg.num_heads, cfg.mlp_dim, first=i == 0) for i in range(cfg.depth))
        self.final_attn, self.final_norm = Attention(C, cfg.num_heads), nn.LayerNorm(C)
        self.upscale = nn.Sequential(nn.ConvTranspose2d(C, C // 4, 2, stride=2), LayerNorm2d(C // 4), nn.GELU(),
                                     nn.ConvTranspose2d(C // 4, C // 8, 2, stride=2), nn.GELU())
        self.hyper = MLP([C, C, C // 8])

    def decode(self, image: torch.Tensor, sparse: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
        """image, dense (B', C, n, n), sparse (B', k, C) -> mask logits (B', 4n, 4n)."""
        Bp, C, n, _ = image.shape
        tokens = torch.cat([self.mask_token.expand(Bp, 1, C), sparse], 1)
        token_pe, image_pe = tokens, self.pe(n).to(image.dtype)
        x, img = tokens, (image + dense).flatten(2).transpose(1, 2)  # (B', n*n, C)
        for block in self.blocks:
            x, img = block(x, img, token_pe, image_pe)
        x = self.final_norm(x + self.final_attn(x + token_pe, img + image_pe, img))
        up = self.upscale(img.transpose(1, 2).reshape(Bp, C, n, n))  # (B', C/8, 4n, 4n)
        return torch.einsum("bc,bchw->bhw", self.hyper(x[:, 0]), up)

    def forward(self, h_seg: torch.Tensor, h_v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, V, N, _ = h_v.shape
        n = self.grid
        image = self.image_proj(h_v).view(B * V, n, n, -1).permute(0, 3, 1, 2)
        C = image.shape[1]
        sparse = self.prompt(h_seg).view(B, self.num_prompts, C).repeat_interleave(V, 0)  # one prompt, all views
        coarse = self.decode(image, sparse, self.no_mask.view(1, C, 1, 1).expand(B * V, C, n, n))
        fine = self.decode(image, sparse, self.mask_embed(coarse[:, None]))
        return coarse.view(B, V, 4 * n, 4 * n), fine.view(B, V, 4 * n, 4 * n)


def sigmoid_focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float, gamma: float) -> torch.Tensor:
    """Mean per-pixel focal loss (RetinaNet); `target` may be soft, in [0, 1]."""
    p = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = p * target + (1 - p) * (1 - target)
    alpha_t = alpha * target + (1 - alpha) * (1 - target)
    return (alpha_t * ce * (1 - p_t) ** gamma).mean()


def spatial_kl(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """KL(target || softmax(logits)) over the pixels of each map (..., H, W), mean over maps with a goal.

    The normalised mask is where the goal is; the softmax of the logits is where the model puts it.
    Maps without any goal pixel (an object out of view) have no distribution and are left out.
    """
    t, lq = target.flatten(-2), logits.flatten(-2).float().log_softmax(-1)
    area = t.sum(-1)
    p = t / area.clamp_min(1e-6).unsqueeze(-1)
    kl = (torch.xlogy(p, p) - p * lq).sum(-1)
    has_goal = (area > 0).float()
    return (kl * has_goal).sum() / has_goal.sum().clamp_min(1.0)


def segmentation_loss(coarse: torch.Tensor, fine: torch.Tensor, masks: torch.Tensor,
                      cfg: LossConfig) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """coarse, fine (B, V, h, w) logits; masks (B, V, S, S) in [0, 1] -> L_seg and its parts."""
    size = masks.shape[-2:]
    parts = {}
    for name, logits in (("coarse", coarse), ("fine", fine)):
        up = F.interpolate(logits.float(), size=size, mode="bilinear", align_corners=False)
        parts[f"seg_focal_{name}"] = sigmoid_focal_loss(up, masks, cfg.focal_alpha, cfg.focal_gamma)
        parts[f"seg_kl_{name}"] = spatial_kl(up, masks)
    loss = sum(cfg.focal_weight * parts[f"seg_focal_{n}"] + cfg.kl_weight * parts[f"seg_kl_{n}"]
               for n in ("coarse", "fine")) / 2
    pred, goal = up > 0, masks >= 0.5
    union = (pred | goal).sum()
    parts["seg_iou"] = (pred & goal).sum() / union.clamp_min(1)
    return loss, parts
