"""How a pretrained part is trained: fully, frozen, or through LoRA adapters (peft).

Adapters are injected in place (`peft.inject_adapter_in_model`), so parameter names and the module
tree stay ours and checkpoints hold base weights and adapters side by side. "all-linear" targets
every linear layer except an output head (the LM head stays tied to the input embeddings).
"""

from __future__ import annotations

from torch import nn

from pokevla.model.config import Finetune, LoRAConfig


def apply_finetune(module: nn.Module, mode: Finetune, cfg: LoRAConfig) -> None:
    if mode == "frozen":
        module.requires_grad_(False)
    elif mode == "lora":
        from peft import LoraConfig, inject_adapter_in_model

        inject_adapter_in_model(LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                                           target_modules="all-linear"), module)  # leaves only the adapters trainable


def is_lora(name: str) -> bool:
    return "lora_" in name


def merge_adapters(module: nn.Module) -> int:
    """Folds every LoRA adapter in `module` into its base layer's weights and puts the plain layer
    back in its place (W + B A scaled, computed by peft); returns how many layers were merged."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    count = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, BaseTunerLayer):
                child.merge()
                setattr(parent, name, child.get_base_layer())
                count += 1
    return count


def merged_copy(model):
    """A copy of a PokeVLA model with its LoRA adapters merged, configured as fully fine-tuned (so
    it loads without adapters), and the number of merged layers. `model` is left as it was."""
    import copy
    import dataclasses

    merged = copy.deepcopy(model)
    count = merge_adapters(merged)
    c = merged.config
    full = lambda part: dataclasses.replace(part, finetune="full") if part.finetune == "lora" else part  # noqa: E731
    merged.config = dataclasses.replace(c, vision=full(c.vision), llm=full(c.llm))
    merged.processor.config = merged.config
    return merged, count
