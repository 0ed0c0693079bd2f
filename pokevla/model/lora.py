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
