"""The PokeVLA model: PokeVLM (DINOv2 + SigLIP + Qwen2), goal-aware segmentation, geometry alignment
and the action expert. `PokeVLA(get_preset("tiny"), stats)` builds one; see docs/model.md.

Names are imported on first use, so `pokevla --help` (which reads `pokevla.model.commands`) does
not pay for torch and transformers.
"""

import importlib

_EXPORTS = {
    "PokeVLA": "pokevla.model.pokevla",
    "PokeVLAConfig": "pokevla.model.config",
    "get_preset": "pokevla.model.config",
    "Normalizer": "pokevla.model.normalize",
    "Processor": "pokevla.model.processor",
    "InputError": "pokevla.model.processor",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'pokevla.model' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
