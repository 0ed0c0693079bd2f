"""DINOv2 + SigLIP loaded from local Hugging Face folders give transformers' own outputs."""

from __future__ import annotations

import torch
from transformers import Dinov2Model, SiglipVisionModel

from pokevla.model.vision import DINOV2_MEAN, DINOV2_STD, Projector

from .conftest import override


def _normalise(images, mean, std):
    return (images - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def test_loaded_encoders_match_transformers(make_model, tiny, hf_checkpoints):
    config = override(tiny, {"vision.dinov2_path": hf_checkpoints["dinov2"],
                             "vision.siglip_path": hf_checkpoints["siglip"], "vision.stem_channels": []})
    model = make_model(config)
    # the folders decide the architecture, and the resolved config says so
    assert (model.config.vision.dinov2.hidden_size, model.config.vision.dinov2.pos_embed_size) == (48, 64)
    assert (model.config.vision.siglip.hidden_size, model.config.vision.siglip.intermediate_size) == (40, 80)
    images = torch.rand(3, 3, 128, 128)
    ours = model.vision(images)
    assert ours.shape == (3, 64, 48 + 40)

    dinov2 = Dinov2Model.from_pretrained(hf_checkpoints["dinov2"]).eval()
    siglip = SiglipVisionModel.from_pretrained(hf_checkpoints["siglip"]).eval()
    with torch.no_grad():
        ref_dino = dinov2(pixel_values=_normalise(images, DINOV2_MEAN, DINOV2_STD)).last_hidden_state[:, 1:]
        ref_sig = siglip(pixel_values=(images - 0.5) / 0.5).last_hidden_state
    torch.testing.assert_close(ours[..., :48], ref_dino, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours[..., 48:], ref_sig, rtol=1e-5, atol=1e-5)
    # the projector maps the concatenated features into the language model's width
    assert model.projector(ours).shape == (3, 64, tiny.llm.hidden_size)


def test_siglip_position_embeddings_are_interpolated_for_another_size(make_model, tiny):
    config = override(tiny, {"vision.siglip.pos_embed_size": 64})
    model = make_model(config)
    assert model.vision.siglip_interpolate
    assert model.vision(torch.rand(1, 3, 128, 128)).shape == (1, 64, 128)


def test_projector_is_prismatics_fused_mlp():
    proj = Projector(6, 4)
    assert [tuple(m.weight.shape) for m in proj.net if hasattr(m, "weight")] == [(24, 6), (4, 24), (4, 4)]
