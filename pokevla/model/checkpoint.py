"""One folder per model: everything needed to rebuild it, written atomically.

    config.json       {"format_version", "pokevla_version", "config": the PokeVLAConfig}
    backbones.json    the exact transformers configs of DINOv2, SigLIP and Qwen2
    model.safetensors the weights (shared tensors once; a model geometry teacher's weights never)
    stats.json        normalisation statistics, LeRobot format
    tokenizer.json, tokenizer_config.json, ...   the tokenizer with the placeholder tokens

The folder is written (and fsynced) under a temporary name beside the target and renamed into place,
so a reader never sees a half-written checkpoint; replacing an existing folder takes two renames, with
the old one moved aside first. Every mismatch on loading is a `CheckpointError`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

from pokevla import __version__
from pokevla.common.config import from_dict, to_dict
from pokevla.common.errors import CheckpointError, ConfigError
from pokevla.common.io import share
from pokevla.model.backbones import Backbones, describe
from pokevla.model.config import PokeVLAConfig
from pokevla.model.tokenizer import load_tokenizer

CONFIG, BACKBONES, WEIGHTS, STATS = "config.json", "backbones.json", "model.safetensors", "stats.json"
FORMAT_VERSION = 1
TEACHER_PREFIX = "geometry.teacher."  # frozen, external: not ours to save
TRAINING_HEADS = ("segmentation", "geometry")
VLM_KIND = "pokevlm"  # config.json's "model" in a stage-1 folder (`pokevla.pretrain.vlm`); absent in a PokeVLA's


def checkpoint_tensors(model) -> dict[str, torch.Tensor]:
    """The state to save: no teacher weights, and each shared tensor (tied embeddings) once."""
    out, seen = {}, set()
    for name, t in model.state_dict().items():
        if name.startswith(TEACHER_PREFIX):
            continue
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape))
        if key in seen:
            continue
        seen.add(key)
        out[name] = t
    return out


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2) + "\n")


def save_pretrained(model, path: str | Path) -> None:
    if model.normalizer is None:
        raise CheckpointError("cannot save a model without normalisation statistics (build it with stats=...)")
    save_folder(model, path, extra={STATS: model.normalizer.to_json()})


def save_folder(model, path: str | Path, meta: dict | None = None, extra: dict[str, dict] | None = None) -> None:
    """Writes `model`'s weights, config.json (`meta` keys beside the config), backbones.json, the
    `extra` JSON files and the tokenizer into the folder `path`, atomically (stage 1 and stage 2 models)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    share(tmp)  # mkdtemp's 0700 would follow the folder into place
    try:
        tensors = {k: v.detach().cpu().contiguous() for k, v in checkpoint_tensors(model).items()}
        save_file(tensors, tmp / WEIGHTS, metadata={"format": "pokevla", "format_version": str(FORMAT_VERSION)})
        share(tmp / WEIGHTS)  # safetensors writes it 0600
        _write_json(tmp / CONFIG, {"format_version": FORMAT_VERSION, "pokevla_version": __version__, **(meta or {}),
                                   "config": to_dict(model.config)})
        _write_json(tmp / BACKBONES, model.backbones.to_json())
        for name, content in (extra or {}).items():
            _write_json(tmp / name, content)
        model.tokenizer.save_pretrained(tmp)
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old / path.name)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path.parent} is not a PokeVLA checkpoint: {path.name} is missing") from None
    except (OSError, ValueError) as e:
        raise CheckpointError(f"cannot read {path}: {e}") from None


def read_config(path: Path) -> PokeVLAConfig:
    meta = _read_json(path / CONFIG)
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path / CONFIG}: expected format_version {FORMAT_VERSION}, "
                              f"got {meta.get('format_version') if isinstance(meta, dict) else meta!r}")
    config = meta.get("config")
    norm = config.get("norm") if isinstance(config, dict) else None
    if isinstance(norm, dict):
        # saved before the normalisation floors existed: it was trained without them, keep it so
        norm.setdefault("state_min_range", 0.0)
        norm.setdefault("action_min_range", 0.0)
    try:
        return from_dict(PokeVLAConfig, meta["config"], where=str(path / CONFIG))
    except (ConfigError, KeyError) as e:
        raise CheckpointError(f"{path / CONFIG}: {e}") from None


def load_weights(model, file: Path) -> None:
    """Loads `file` into `model`, naming every missing, unexpected or mis-shaped tensor."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not file.exists():
        raise CheckpointError(f"{file.parent} is not a PokeVLA checkpoint: {file.name} is missing")
    try:
        state = load_file(file)
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{file} is not a readable safetensors file ({e})") from None
    expected = checkpoint_tensors(model)
    if not model.training_heads:  # an inference model leaves the training heads' weights in the file
        state = {k: v for k, v in state.items() if k.split(".")[0] not in TRAINING_HEADS}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
             if k in state and state[k].shape != v.shape]
    heads = sorted({k.split(".")[0] for k in missing if k.split(".")[0] in TRAINING_HEADS})
    if heads and len(heads) == len({k.split(".")[0] for k in missing}) and not unexpected and not wrong:
        raise CheckpointError(f"{file.parent} has no weights for the training heads ({', '.join(heads)}): it was "
                              "saved from an inference-only model; load it with training_heads=False")
    problems = [f"{label} {', '.join(items[:5])}{' ...' if len(items) > 5 else ''}"
                for label, items in (("missing", missing), ("unexpected", unexpected), ("shape (file vs model)", wrong))
                if items]
    if problems:
        raise CheckpointError(f"{file} does not match the model: {'; '.join(problems)}")
    model.load_state_dict(state, strict=False)


def from_pretrained(path: str | Path, *, training_heads: bool, device: str | torch.device):
    from pokevla.model.pokevla import PokeVLA

    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"no checkpoint folder at {path}")
    meta = _read_json(path / CONFIG)
    if isinstance(meta, dict) and meta.get("model") == VLM_KIND:
        raise CheckpointError(f"{path} holds a stage-1 PokeVLM (pokevla pretrain), not a policy; post-train it with "
                              f"`pokevla train --init {path} ...`")
    config = read_config(path)
    try:
        backbones = Backbones.from_json(_read_json(path / BACKBONES))
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path / BACKBONES}: {e}") from None
    if describe(config, backbones) != config:
        raise CheckpointError(f"{path}: {CONFIG} and {BACKBONES} describe different backbones")
    stats = _read_json(path / STATS)
    model = PokeVLA(config, stats, training_heads=training_heads, backbones=backbones, load_weights=False,
                    tokenizer=load_tokenizer(path))
    load_weights(model, path / WEIGHTS)
    return model.to(device)


def _diff(a, b, prefix: str = "") -> list[str]:
    out = []
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if dataclasses.is_dataclass(x):
            out += _diff(x, y, f"{prefix}{f.name}.")
        elif x != y:
            out.append(f"{prefix}{f.name} {y!r} (checkpoint) vs {x!r} (model)")
    return out


def load_into(model, path: str | Path) -> None:
    from pokevla.model.normalize import Normalizer

    path = Path(path)
    differences = _diff(model.config, read_config(path))
    if differences:
        raise CheckpointError(f"{path} was saved from a different config: {'; '.join(differences[:5])}")
    c = model.config
    stats = Normalizer.for_model(_read_json(path / STATS), c.norm, c.expert.state_dim, c.expert.action_dim)
    if model.normalizer is not None and stats != model.normalizer:
        raise CheckpointError(f"{path / STATS} differ from the model's normalisation statistics")
    load_weights(model, path / WEIGHTS)
    model.normalizer = stats
