"""Presets, validation, and dotted command-line overrides."""

from __future__ import annotations

import argparse

import pytest
import torch

from pokevla.common.config import from_dict, to_dict
from pokevla.common.errors import ConfigError
from pokevla.model.config import PokeVLAConfig, add_config_args, config_from_args, get_preset

from .conftest import override


@pytest.mark.parametrize("name", ["tiny", "1b"])
def test_presets_round_trip_through_dicts(name):
    config = get_preset(name)
    assert from_dict(PokeVLAConfig, to_dict(config)) == config


def test_preset_sizes():
    tiny, one_b = get_preset("tiny"), get_preset("1b")
    assert (tiny.vision.image_size, tiny.grid, tiny.vision.stem_stride) == (96, 6, 8)
    assert (one_b.vision.image_size, one_b.grid, one_b.llm.num_queries, one_b.expert.chunk_size) == (224, 16, 64, 8)
    widths = (one_b.vision.dinov2.hidden_size, one_b.vision.siglip.hidden_size, one_b.llm.hidden_size)
    assert widths == (1024, 1152, 896)
    assert (one_b.loss.seg_weight, one_b.loss.geo_weight) == (0.2, 0.4)


def test_conv_stem_shapes_and_its_limits(make_model, tiny):
    model = make_model()
    features = model.vision(torch.rand(2, 3, 96, 96))
    assert features.shape == (2, tiny.grid**2, 128)  # 16 px tokens after the x8 stem and 2 px patches
    assert model.backbones.dinov2.patch_size == 2 and model.backbones.dinov2.num_channels == 64
    assert model.config.vision.dinov2.patch_size == 16  # the resolved config still speaks in pixels
    with pytest.raises(ConfigError, match="must divide"):
        override(tiny, {"vision.stem_channels": [8, 8, 8, 8, 8]})  # x32 does not divide 16 px patches


def test_unknown_preset():
    with pytest.raises(ConfigError, match="unknown model preset 'huge'"):
        get_preset("huge")


@pytest.mark.parametrize("changes,message", [
    ({"vision.image_size": 120}, "not a multiple of vision.dinov2.patch_size"),
    ({"vision.siglip.patch_size": 8}, "must be equal"),
    ({"geometry.teacher": "model"}, "needs --geometry.teacher-path"),
    ({"geometry.teacher": "precomputed"}, "use --vision.crop-scale 1"),
    ({"loss.seg_weight": -1.0}, "loss weights must be >= 0"),
])
def test_invalid_configs(changes, message):
    with pytest.raises(ConfigError, match=message):
        override(get_preset("tiny"), changes)


def test_command_line_overrides():
    parser = argparse.ArgumentParser()
    add_config_args(parser)
    args = parser.parse_args(["--preset", "1b", "--vision.dinov2-path", "/ckpt/dinov2", "--loss.seg-weight", "0",
                              "--llm.finetune", "full", "--views", "primary"])
    config = config_from_args(args)
    assert config.vision.dinov2_path == "/ckpt/dinov2" and config.loss.seg_weight == 0 and not config.seg_enabled
    assert config.llm.finetune == "full" and config.views == ("primary",) and config.llm.hidden_size == 896
    with pytest.raises(ConfigError, match="--preset is required"):
        config_from_args(parser.parse_args([]))


@pytest.mark.parametrize("flag", ["vision.dinov2_path", "vision.siglip_path", "llm.path"])
def test_backbone_paths_must_be_local_folders(make_model, tmp_path, flag):
    dashed = flag.replace("_", "-")
    with pytest.raises(ConfigError, match=f"--{dashed} {tmp_path}/missing: no such folder"):
        make_model(override(get_preset("tiny"), {flag: str(tmp_path / "missing"), "vision.stem_channels": []}))
    with pytest.raises(ConfigError, match=f"--{dashed} {tmp_path}: no config.json there"):
        make_model(override(get_preset("tiny"), {flag: str(tmp_path), "vision.stem_channels": []}))
