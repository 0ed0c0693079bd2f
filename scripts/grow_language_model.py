"""Writes a stage-1 checkpoint with a deeper language model that computes exactly what the original
computes, for `pokevla pretrain --init OUT` to train on (depth growth of a model trained from scratch).

    python scripts/grow_language_model.py RUN_OR_FOLDER LAYERS OUT

Each of the L original layers is followed by LAYERS/L - 1 copies of itself whose attention and MLP
output projections are zero: a residual block with a zero output is the identity, so the grown model
gives the same answers until training moves the copies, and the copies start from weights that
already read the residual stream rather than from noise. Prints the largest logit difference between
the two models on a random image as the check.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
from pathlib import Path

import torch

from pokevla.common.errors import CheckpointError, ConfigError
from pokevla.model.lora import merge_adapters
from pokevla.pretrain.transfer import check_init
from pokevla.pretrain.vlm import PokeVLM

LAYERS_PREFIX = "language.llm.model.layers."
ZEROED = ("self_attn.o_proj.weight", "mlp.down_proj.weight")  # Qwen2 layers have no bias on either


def grown_state(state: dict[str, torch.Tensor], old: int, factor: int) -> dict[str, torch.Tensor]:
    """`state` with layer i of `old` moved to i * factor and copied to the next factor - 1 places, the
    copies' output projections zeroed."""
    out = {k: v for k, v in state.items() if not k.startswith(LAYERS_PREFIX)}
    for key, value in state.items():
        if not key.startswith(LAYERS_PREFIX):
            continue
        index, rest = key[len(LAYERS_PREFIX):].split(".", 1)
        for copy_index in range(factor):
            zero = copy_index > 0 and rest in ZEROED
            out[f"{LAYERS_PREFIX}{int(index) * factor + copy_index}.{rest}"] = torch.zeros_like(value) if zero else value
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", help="a pretrain run (its last checkpoint) or a stage-1 checkpoint folder")
    parser.add_argument("layers", type=int, help="language-model layers of the grown model")
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    try:
        folder = Path(args.source) if (Path(args.source) / "config.json").is_file() else check_init(args.source, "tiny")
        model = PokeVLM.from_pretrained(folder)
    except (CheckpointError, ConfigError) as e:
        raise SystemExit(str(e)) from None
    merge_adapters(model)
    old = model.backbones.llm.num_hidden_layers
    if args.layers % old or args.layers <= old:
        raise SystemExit(f"LAYERS must be a multiple of the model's {old} layers, and larger")
    llm = copy.deepcopy(model.backbones.llm)
    llm.num_hidden_layers = args.layers
    llm.layer_types = [llm.layer_types[0]] * args.layers
    backbones = dataclasses.replace(model.backbones, llm=llm)
    config = dataclasses.replace(model.config, llm=dataclasses.replace(model.config.llm, num_layers=args.layers))
    # LoRA adapters are merged above, so a LoRA run's layers are saved as plain ones
    trains = "llm" if model.trains == "lora" else model.trains
    grown = PokeVLM(config, trains, backbones=backbones, load_weights=False, tokenizer=model.tokenizer)
    grown.load_state_dict(grown_state(model.state_dict(), old, args.layers // old))
    grown.save_pretrained(args.out)

    pixels = torch.rand(1, 3, config.vision.image_size, config.vision.image_size)
    ids = torch.tensor([model.chat.prompt("Where is the plate?", 1)])
    with torch.no_grad():
        logits = [m.language.llm(inputs_embeds=m.embed(pixels, ids)).logits for m in (grown, model)]
    difference = (logits[0] - logits[1]).abs().max()
    print(f"{folder} -> {args.out}: {old} -> {args.layers} layers, largest logit difference {difference:.2e}")


if __name__ == "__main__":
    main()
