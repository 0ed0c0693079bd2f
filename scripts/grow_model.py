"""Writes a stage-1 checkpoint with deeper encoders and/or language model that computes exactly what
the original computes, for `pokevla pretrain --init OUT` to train on (depth growth of a model trained
from scratch).

    python scripts/grow_model.py RUN_OR_FOLDER OUT [--language LAYERS] [--vision LAYERS]

Each of the L original layers of a grown stack is followed by LAYERS/L - 1 copies of itself whose
residual branches output zero: the attention and MLP output projections of Qwen2 and SigLIP layers,
the layer scales of DINOv2's. A residual block with a zero output is the identity, so the grown
model gives the same answers until training moves the copies, and the copies start from weights that
already read the residual stream rather than from noise. `--vision` grows both encoders. Prints the
largest logit difference between the two models on a random image as the check.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import torch

from pokevla.common.errors import CheckpointError
from pokevla.model.backbones import describe
from pokevla.model.lora import merge_adapters
from pokevla.pretrain.vlm import PokeVLM
from pokevla.train.checkpoints import resolve_model_dir

# backbone -> (prefix of its layers in the state dict, the tensors of a copy that are zeroed)
STACKS = {
    "llm": ("language.llm.model.layers.", ("self_attn.o_proj.weight", "mlp.down_proj.weight")),
    "dinov2": ("vision.dinov2.encoder.layer.", ("layer_scale1.lambda1", "layer_scale2.lambda1")),
    "siglip": ("vision.siglip.encoder.layers.", ("self_attn.out_proj.weight", "self_attn.out_proj.bias",
                                                 "mlp.fc2.weight", "mlp.fc2.bias")),
}


def grown_state(state: dict[str, torch.Tensor], prefix: str, zeroed: tuple[str, ...],
                factor: int) -> dict[str, torch.Tensor]:
    """`state` with layer i under `prefix` moved to i * factor and copied to the next factor - 1 places,
    the copies' `zeroed` tensors set to zero."""
    out = {k: v for k, v in state.items() if not k.startswith(prefix)}
    for key, value in state.items():
        if not key.startswith(prefix):
            continue
        index, rest = key[len(prefix):].split(".", 1)
        for copy_index in range(factor):
            zero = copy_index > 0 and rest in zeroed
            out[f"{prefix}{int(index) * factor + copy_index}.{rest}"] = torch.zeros_like(value) if zero else value
    return out


def deeper(backbone_config, layers: int):
    """A transformers config like `backbone_config` with `layers` layers; the per-layer lists (Qwen2's
    layer types, DINOv2's stage names and outputs) are derived again for the new depth."""
    data = backbone_config.to_dict()
    for derived in ("layer_types", "stage_names", "out_features", "out_indices"):
        data.pop(derived, None)
    return type(backbone_config).from_dict({**data, "num_hidden_layers": layers})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", help="a pretrain run (its last checkpoint) or a stage-1 checkpoint folder")
    parser.add_argument("out", type=Path)
    parser.add_argument("--language", type=int, help="language-model layers of the grown model")
    parser.add_argument("--vision", type=int, help="layers of each vision encoder of the grown model")
    args = parser.parse_args()
    if args.language is None and args.vision is None:
        raise SystemExit("nothing to grow: give --language LAYERS and/or --vision LAYERS")
    try:
        folder = resolve_model_dir(args.source)
        model = PokeVLM.from_pretrained(folder)
    except CheckpointError as e:
        raise SystemExit(str(e)) from None
    merge_adapters(model)
    depths = {"llm": args.language} if args.language is not None else {}
    if args.vision is not None:
        depths.update(dinov2=args.vision, siglip=args.vision)
    backbones, state = model.backbones, model.state_dict()
    for name, layers in depths.items():
        old = getattr(backbones, name).num_hidden_layers
        if layers % old or layers <= old:
            raise SystemExit(f"{name} has {old} layers: the grown depth must be a larger multiple of it, not {layers}")
        backbones = dataclasses.replace(backbones, **{name: deeper(getattr(backbones, name), layers)})
        state = grown_state(state, *STACKS[name], layers // old)
    config = describe(model.config, backbones)
    # LoRA adapters are merged above, so a LoRA run's layers are saved as plain ones
    trains = "llm" if model.trains == "lora" else model.trains
    grown = PokeVLM(config, trains, backbones=backbones, load_weights=False, tokenizer=model.tokenizer)
    grown.load_state_dict(state)
    grown.save_pretrained(args.out)

    pixels = torch.rand(1, 3, config.vision.image_size, config.vision.image_size)
    ids = torch.tensor([model.chat.prompt("Where is the plate?", 1)])
    with torch.no_grad():
        logits = [m.language.llm(inputs_embeds=m.embed(pixels, ids)).logits for m in (grown, model)]
    difference = (logits[0] - logits[1]).abs().max()
    grown_to = ", ".join(f"{name} {getattr(model.backbones, name).num_hidden_layers} -> {layers}"
                         for name, layers in depths.items())
    print(f"{folder} -> {args.out}: {grown_to} layers, largest logit difference {difference:.2e}")


if __name__ == "__main__":
    main()
