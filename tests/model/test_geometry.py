"""Geometry teachers (simulator depth, precomputed, a local model) and the cosine alignment loss."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import Dinov2Model

from pokevla.common.errors import ConfigError
from pokevla.model.checkpoint import checkpoint_tensors
from pokevla.model.config import GeometryConfig
from pokevla.model.geometry import DepthTeacher, ModelTeacher, cosine_loss, patch_points
from pokevla.model.vision import DINOV2_MEAN, DINOV2_STD

from .conftest import override


def _camera(f: float, c: float) -> torch.Tensor:
    return torch.tensor([[[f, 0.0, c], [0.0, f, c], [0.0, 0.0, 1.0]]])


def test_patch_points_unproject_and_move_to_the_base_frame():
    # an 8x8 image of a fronto-parallel plane at 2 m, camera 1 m above the base origin, looking down
    depth = torch.full((1, 8, 8), 2.0)
    K = _camera(4.0, 3.5)  # principal point at the image centre (pixel centres 0..7)
    T = torch.eye(4)[None].clone()
    T[0, :3, :3] = torch.tensor([[1.0, 0, 0], [0, -1.0, 0], [0, 0, -1.0]])
    T[0, :3, 3] = torch.tensor([0.5, 0.0, 1.0])
    mean, std, valid = patch_points(depth, K, T, grid=2)
    assert valid.all()
    # top-left patch: pixels 0..3 -> u, v mean 1.5 -> x_cam = (1.5 - 3.5) / 4 * 2 = -1, y_cam = -1, z_cam = 2
    torch.testing.assert_close(mean[0, 0], torch.tensor([0.5 - 1.0, 1.0, 1.0 - 2.0]))
    assert float(std[0, 0, 2]) == pytest.approx(0.0, abs=1e-5) and float(std[0, 0, 0]) > 0


def test_patch_points_ignore_invalid_depth():
    depth = torch.full((1, 4, 4), 1.0)
    depth[0, :2, :2] = 0.0  # top-left patch: no depth at all
    depth[0, 2, 2] = float("inf")
    mean, _, valid = patch_points(depth, _camera(2.0, 1.5), torch.eye(4)[None], grid=2)
    assert valid.tolist() == [[False, True, True, True]]
    assert torch.isfinite(mean[:, 1:]).all()
    assert float(mean[0, 3, 2]) == pytest.approx(1.0)


def test_two_views_of_the_same_points_get_the_same_descriptor():
    teacher = DepthTeacher(GeometryConfig(dim=64), grid=1)
    # the same 3D point seen from two cameras: at 1 m straight ahead, and from a camera shifted by 0.5 m
    K = _camera(1.0, 0.0)
    T1, T2 = torch.eye(4)[None], torch.eye(4)[None].clone()
    T2[0, 0, 3] = -0.5  # the second camera sits at x = -0.5 and sees the point at x_cam = +0.5
    depth = torch.ones(1, 1, 1)
    m1, s1, _ = patch_points(depth, K, T1, grid=1)
    m2, s2, _ = patch_points(depth, torch.tensor([[[1.0, 0, -0.5], [0, 1.0, 0], [0, 0, 1.0]]]), T2, grid=1)
    torch.testing.assert_close(m1, m2)
    f1, f2 = teacher.describe(torch.cat([m1, s1], -1)), teacher.describe(torch.cat([m2, s2], -1))
    torch.testing.assert_close(f1, f2)
    assert float(f1.norm()) == pytest.approx(1.0, rel=1e-5)


def test_descriptor_similarity_falls_with_distance_and_is_seeded():
    teacher = DepthTeacher(GeometryConfig(dim=2048, pos_scale_m=0.1), grid=1)
    x = torch.zeros(6)
    near, far = x.clone(), x.clone()
    near[0], far[0] = 0.05, 0.3
    f = teacher.describe(torch.stack([x, near, far]))
    cos_near, cos_far = float(f[0] @ f[1]), float(f[0] @ f[2])
    assert cos_near == pytest.approx(math.exp(-0.5 * 0.5 ** 2), abs=0.05)  # Gaussian kernel, 0.5 length scales
    assert cos_far < 0.1 < cos_near
    torch.testing.assert_close(DepthTeacher(GeometryConfig(dim=2048), 1).freqs, teacher.freqs)
    with pytest.raises(ConfigError, match="must be even"):
        DepthTeacher(GeometryConfig(dim=33), 1)


def test_cosine_loss_counts_valid_patches_only():
    target = torch.randn(2, 3, 4, 8)
    pred = target.clone()
    pred[:, :, 0] = -target[:, :, 0]  # wrong on patch 0 only
    valid = torch.ones(2, 3, 4, dtype=torch.bool)
    assert float(cosine_loss(pred, target, valid)) == pytest.approx(2.0 / 4)
    valid[:, :, 0] = False
    assert float(cosine_loss(pred, target, valid)) == pytest.approx(0.0, abs=1e-6)


def test_model_teacher_from_a_local_folder(make_model, tiny, hf_checkpoints):
    config = override(tiny, {"geometry.teacher": "model", "geometry.teacher_path": hf_checkpoints["dinov2"]})
    model = make_model(config)
    assert model.config.geometry.dim == 48  # read from the teacher
    teacher = model.geometry.teacher
    assert isinstance(teacher, ModelTeacher) and not any(p.requires_grad for p in teacher.parameters())
    images = torch.randint(0, 256, (2, 128, 128, 3), dtype=torch.uint8)
    features, valid = teacher({"observation.images.primary": images}, "primary")
    assert features.shape == (2, tiny.grid ** 2, 48) and valid.all()
    # transformers' DINOv2 on the same pixels: its 4x4 patch grid (64 px) resampled to our 6x6 grid
    reference = Dinov2Model.from_pretrained(hf_checkpoints["dinov2"]).eval()
    x = torch.nn.functional.interpolate(images.permute(0, 3, 1, 2).float() / 255, size=(64, 64), mode="bilinear",
                                        antialias=True, align_corners=False)
    x = (x - torch.tensor(DINOV2_MEAN).view(1, 3, 1, 1)) / torch.tensor(DINOV2_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        tokens = reference(pixel_values=x).last_hidden_state[:, 1:]
    grid = tokens.transpose(1, 2).reshape(2, 48, 4, 4)
    expected = torch.nn.functional.interpolate(grid, size=(tiny.grid, tiny.grid), mode="bilinear", antialias=True, align_corners=False)
    torch.testing.assert_close(features, expected.flatten(2).transpose(1, 2))
    # a training step works and the teacher stays out of the checkpoint
    from pokevla.model.synthetic import synthetic_batch

    loss, metrics = model(synthetic_batch(model.config, 2))
    loss.backward()
    assert metrics["loss_geo"] > 0 and teacher.model.training is False
    assert not any(k.startswith("geometry.teacher") for k in checkpoint_tensors(model))


def test_model_teacher_needs_its_pixel_statistics(tmp_path):
    from transformers import Dinov2Config

    Dinov2Model(Dinov2Config(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, image_size=32,
                             patch_size=16)).save_pretrained(tmp_path)
    with pytest.raises(ConfigError, match="need preprocessor_config.json with image_mean and image_std"):
        ModelTeacher(str(tmp_path), grid=2)
