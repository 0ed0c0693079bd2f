"""The exact transformers configs of the three pretrained parts, and the config they imply.

A backbone is built from our typed fields, or, when its `*_path` is set, from that folder's own
`config.json` (which then rewrites the typed fields, so the resolved `PokeVLAConfig` describes what
was built). Checkpoints store these configs in `backbones.json` and rebuild from them exactly.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from transformers import Dinov2Config, Qwen2Config, SiglipVisionConfig

from pokevla.common.errors import ConfigError
from pokevla.model.config import PokeVLAConfig, check_local_folder
from pokevla.model.geometry import teacher_dim
from pokevla.model.language import llm_config, load_qwen2_config, qwen2_config
from pokevla.model.vision import dinov2_config, load_dinov2_config, load_siglip_config, siglip_config, vit_config


@dataclass
class Backbones:
    dinov2: Dinov2Config
    siglip: SiglipVisionConfig
    llm: Qwen2Config

    def to_json(self) -> dict:
        return {"dinov2": self.dinov2.to_dict(), "siglip": self.siglip.to_dict(), "llm": self.llm.to_dict()}

    @classmethod
    def from_json(cls, data: dict) -> "Backbones":
        return cls(dinov2=Dinov2Config.from_dict(data["dinov2"]), siglip=SiglipVisionConfig.from_dict(data["siglip"]),
                   llm=Qwen2Config.from_dict(data["llm"]))


def _load(flag: str, path: str, loader):
    try:
        return loader(check_local_folder(flag, path))
    except (OSError, ValueError) as e:
        raise ConfigError(f"--{flag} {path}: not a usable Hugging Face folder ({e})") from None


def describe(config: PokeVLAConfig, backbones: Backbones) -> PokeVLAConfig:
    """`config` with its architecture fields taken from `backbones`."""
    stride = config.vision.stem_stride
    vision = dataclasses.replace(config.vision, dinov2=vit_config(backbones.dinov2, stride),
                                 siglip=vit_config(backbones.siglip, stride))
    return dataclasses.replace(config, vision=vision, llm=llm_config(backbones.llm, config.llm))


def resolve_backbones(config: PokeVLAConfig, backbones: Backbones | None = None) -> tuple[PokeVLAConfig, Backbones]:
    """The backbone configs of a new model, and `config` rewritten to match them and the geometry teacher.

    `backbones`: take these (a checkpoint's, e.g. stage 1's) instead of building them from `config`."""
    v, llm = config.vision, config.llm
    backbones = backbones or Backbones(
        dinov2=(_load("vision.dinov2-path", v.dinov2_path, load_dinov2_config) if v.dinov2_path
                else dinov2_config(v.dinov2, v.stem_channels)),
        siglip=(_load("vision.siglip-path", v.siglip_path, load_siglip_config) if v.siglip_path
                else siglip_config(v.siglip, v.stem_channels)),
        llm=_load("llm.path", llm.path, load_qwen2_config) if llm.path else qwen2_config(llm),
    )
    config = describe(config, backbones)
    if config.geo_enabled and config.geometry.teacher == "model":
        geometry = dataclasses.replace(config.geometry, dim=teacher_dim(config.geometry))
        config = dataclasses.replace(config, geometry=geometry)
    return config, backbones
