"""Stage 1 -> stage 2: a new PokeVLA starts from a PokeVLM checkpoint (`pokevla train --init RUN`).
The same copy starts a new stage-1 run from an earlier one (`pokevla pretrain --init RUN`).

The PokeVLA is built with the stage-1 backbones and tokenizer, then takes its vision encoders,
projector and language model weights (`TRANSFERRED`); the action expert, the `<SEG>` and query
embeddings and the training heads start fresh. Stage-1 LoRA adapters are merged into their layers
first, and stage 2's own adapters (its `finetune` settings) wrap the merged weights, so the names
differ only by peft's `.base_layer`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

import torch

from pokevla.common.errors import CheckpointError, ConfigError
from pokevla.common.io import read_json
from pokevla.model.backbones import Backbones
from pokevla.model.checkpoint import BACKBONES, WEIGHTS, read_config
from pokevla.model.lora import is_lora, merge_adapters
from pokevla.pretrain.vlm import PokeVLM, read_stage1_meta

TRANSFERRED = ("vision.", "projector.", "language.llm.")


def check_init(path: str, preset: str) -> Path:
    """The stage-1 model folder `path` names (a pretrain run: its last checkpoint); its preset must be `preset`."""
    from pokevla.train.checkpoints import resolve_model_dir

    try:
        folder = resolve_model_dir(path)
    except CheckpointError as e:
        raise ConfigError(f"--init: {e}") from None
    read_stage1_meta(folder)
    trained = read_config(folder).preset
    if trained != preset:
        raise ConfigError(f"--init {path} was pre-trained with preset {trained}, not {preset}; use --preset {trained}")
    return folder


def read_backbones(folder: Path) -> Backbones:
    try:
        return Backbones.from_json(read_json(folder / BACKBONES, CheckpointError))
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{folder / BACKBONES}: {e}") from None


def build_on_stage1(init: str, last: Path | None, config, make: Callable) -> tuple[torch.nn.Module, object, dict | None]:
    """A new model on a stage-1 folder: `make(config, backbones, tokenizer)` with the backbones and tokenizer
    of the `init` run (a new run, which then also takes its weights) or of the run's own `last`
    checkpoint (a resumed run, whose weights the loop loads). Returns (model, `config` rewritten to
    match the backbones, what it started from for run.json or None when resumed)."""
    from pokevla.model.backbones import resolve_backbones
    from pokevla.model.tokenizer import load_tokenizer

    source = last if last is not None else check_init(init, config.preset)
    config, backbones = resolve_backbones(config, read_backbones(source))
    model = make(config, backbones, load_tokenizer(source))
    return model, config, (load_stage1(model, source) if last is None else None)


def weights_sha256(folder: Path) -> str:
    digest = hashlib.sha256()
    with open(folder / WEIGHTS, "rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            digest.update(block)
    return digest.hexdigest()


def load_stage1(model: torch.nn.Module, folder: Path) -> dict:
    """Copies the stage-1 weights of `folder` into `model` (a PokeVLA or a PokeVLM); returns what it started from
    ({"path", "sha256"} of the weights file, for run.json). Any missing or mis-shaped tensor is a
    `CheckpointError` naming it."""
    vlm = PokeVLM.from_pretrained(folder)
    merge_adapters(vlm)
    source = {k: v for k, v in vlm.state_dict().items() if k.startswith(TRANSFERRED)}
    target = {k: v for k, v in model.state_dict().items() if k.startswith(TRANSFERRED) and not is_lora(k)}
    mapped = {name: name.replace(".base_layer", "") for name in target}
    missing = sorted(name for name, src in mapped.items() if src not in source)
    unused = sorted(set(source) - set(mapped.values()))
    wrong = [f"{name} {tuple(source[src].shape)} vs {tuple(target[name].shape)}" for name, src in mapped.items()
             if src in source and source[src].shape != target[name].shape]
    problems = [f"{label} {', '.join(items[:5])}{' ...' if len(items) > 5 else ''}"
                for label, items in (("missing", missing), ("not in the new model", unused),
                                     ("shape (stage 1 vs stage 2)", wrong)) if items]
    if problems:
        raise CheckpointError(f"{folder} does not fit this model: {'; '.join(problems)}")
    model.load_state_dict({name: source[src] for name, src in mapped.items()}, strict=False)
    # the path as named (a relative one stays relative, so a run.json can be shared); the hash identifies the weights
    return {"path": str(folder), "sha256": weights_sha256(folder)}
