"""The action expert reads every one of its inputs."""

from __future__ import annotations

import pytest
import torch

from pokevla.model.action_expert import ActionExpert
from pokevla.model.config import ExpertConfig


@pytest.mark.parametrize("B", [1, 3])
def test_action_expert_shapes_and_inputs(B):
    torch.manual_seed(0)
    expert = ActionExpert(ExpertConfig(dim=32, num_layers=2, num_heads=4, chunk_size=8, action_dim=7, state_dim=8),
                          llm_dim=24)
    inputs = dict(h_v=torch.randn(B, 10, 24), h_seg=torch.randn(B, 24), h_q=torch.randn(B, 4, 24),
                  state=torch.randn(B, 8))
    out = expert(**inputs)
    assert out.shape == (B, 8, 7)
    for name in inputs:  # each source changes the chunk: h_v, h_seg, [h_q ; state]
        changed = dict(inputs, **{name: inputs[name] + torch.randn_like(inputs[name])})
        assert not torch.allclose(expert(**changed), out), name
