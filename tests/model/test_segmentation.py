"""The SAM-style goal segmentation head and its focal + KL loss."""

from __future__ import annotations

import math

import pytest
import torch

from pokevla.model.config import LossConfig, SegmentationConfig
from pokevla.model.segmentation import GoalSegmentationHead, segmentation_loss, sigmoid_focal_loss, spatial_kl


@pytest.mark.parametrize("B", [1, 3])
def test_head_shapes_coarse_then_fine(B):
    torch.manual_seed(0)
    head = GoalSegmentationHead(SegmentationConfig(dim=32, depth=2, num_heads=2, mlp_dim=64), llm_dim=24, grid=4)
    coarse, fine = head(torch.randn(B, 24), torch.randn(B, 2, 16, 24))
    assert coarse.shape == fine.shape == (B, 2, 16, 16)
    assert not torch.allclose(coarse, fine)  # the fine pass is prompted with the coarse mask


def test_one_prompt_serves_every_view():
    torch.manual_seed(0)
    head = GoalSegmentationHead(SegmentationConfig(dim=32, depth=1, num_heads=2, mlp_dim=64), llm_dim=24, grid=4)
    h_v = torch.randn(1, 1, 16, 24)
    # the same view given twice gets the same mask: views differ only through their image embeddings
    coarse, fine = head(torch.randn(1, 24), h_v.expand(1, 2, 16, 24))
    torch.testing.assert_close(fine[:, 0], fine[:, 1])
    # and the prompt matters
    _, other = head(torch.randn(1, 24), h_v.expand(1, 2, 16, 24))
    assert not torch.allclose(fine, other)


def test_focal_loss_value():
    # logit 0 on a goal pixel: p_t = 0.5, ce = ln 2, alpha_t = 0.25 -> 0.25 * ln 2 * 0.25
    loss = sigmoid_focal_loss(torch.zeros(1, 1), torch.ones(1, 1), alpha=0.25, gamma=2.0)
    assert float(loss) == pytest.approx(0.25 * math.log(2) * 0.25)


def test_spatial_kl_is_zero_for_the_target_distribution_and_skips_empty_maps():
    target = torch.zeros(2, 4, 4)
    target[0, 1:3, 1:3] = 1.0
    logits = torch.where(target > 0, 0.0, -1e4)
    assert float(spatial_kl(logits, target)) == pytest.approx(0.0, abs=1e-5)  # map 1 has no goal: left out
    uniform = torch.zeros(2, 4, 4)
    assert float(spatial_kl(uniform, target)) == pytest.approx(math.log(16 / 4), rel=1e-5)


def test_segmentation_loss_parts():
    masks = torch.zeros(2, 2, 32, 32)
    masks[:, :, 8:16, 8:16] = 1
    good = torch.where(masks[..., ::4, ::4] > 0, 10.0, -10.0)
    loss, parts = segmentation_loss(good, good, masks, LossConfig())
    bad_loss, _ = segmentation_loss(-good, -good, masks, LossConfig())
    assert float(loss) < float(bad_loss)
    assert set(parts) == {"seg_focal_coarse", "seg_kl_coarse", "seg_focal_fine", "seg_kl_fine", "seg_iou"}
    assert float(parts["seg_iou"]) > 0.5
