"""The action expert: a chunk of action latents reads the VLM through three cross-attentions.

Each of the L layers is self-attention over the T action latents, then cross-attention to h_v (the
visual hidden states of every view: spatial structure), to h_seg (goal semantics), and to
[h_q ; projected state] (task and action context), then an MLP; pre-norm residual blocks.
LayerNorm + MLP read out the chunk. Regression with L1: one forward pass per chunk.
"""

from __future__ import annotations

import torch
from torch import nn

from pokevla.model.config import ExpertConfig
from pokevla.model.layers import Attention


class ExpertLayer(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: int):
        super().__init__()
        self.self_attn, self.to_visual, self.to_goal, self.to_context = (Attention(dim, heads) for _ in range(4))
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim))
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(5))

    def forward(self, x, visual, goal, context):
        h = self.norms[0](x)
        x = x + self.self_attn(h, h, h)
        for norm, attn, ctx in zip(self.norms[1:4], (self.to_visual, self.to_goal, self.to_context),
                                   (visual, goal, context)):
            x = x + attn(norm(x), ctx, ctx)
        return x + self.mlp(self.norms[4](x))


class ActionExpert(nn.Module):
    """h_v (B, M, d), h_seg (B, d), h_q (B, Q, d), state (B, D_state) -> actions (B, T, D_action)."""

    def __init__(self, cfg: ExpertConfig, llm_dim: int):
        super().__init__()
        d = cfg.dim
        proj = lambda: nn.Sequential(nn.LayerNorm(llm_dim), nn.Linear(llm_dim, d))
        self.in_visual, self.in_goal, self.in_queries = proj(), proj(), proj()
        self.in_state = nn.Sequential(nn.Linear(cfg.state_dim, d), nn.GELU(), nn.Linear(d, d))
        self.latents = nn.Parameter(torch.randn(cfg.chunk_size, d) * 0.02)  # one per step of the chunk
        self.layers = nn.ModuleList(ExpertLayer(d, cfg.num_heads, cfg.mlp_ratio) for _ in range(cfg.num_layers))
        self.norm = nn.LayerNorm(d)
        self.head = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, cfg.action_dim))

    def forward(self, h_v: torch.Tensor, h_seg: torch.Tensor, h_q: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        visual, goal = self.in_visual(h_v), self.in_goal(h_seg)[:, None]
        state = self.in_state(state.to(visual.dtype))[:, None]
        context = torch.cat([self.in_queries(h_q), state], 1)
        x = self.latents.expand(h_v.shape[0], -1, -1)
        for layer in self.layers:
            x = layer(x, visual, goal, context)
        return self.head(self.norm(x))
