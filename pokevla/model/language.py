"""Language model: Qwen2 over [images | padding | prompt | <SEG> | action queries], or with
`llm.prompt_first` over [prompt | padding | images | <SEG> | action queries].

The projected patch features, the `<SEG>` embedding and the action query embeddings are written at
their placeholder positions (see `processor.py` for the layout); the last layer's hidden states at
those positions are h_v, h_seg and h_q. The padding sits between the images and the prompt, so the
positions of the images, `<SEG>` and the queries are the same in every row and can be sliced, not
gathered; every padded position still has a real token before it to attend to.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn
from transformers import Qwen2Config, Qwen2ForCausalLM

from pokevla.model.config import LLMConfig


def qwen2_config(llm: LLMConfig) -> Qwen2Config:
    return Qwen2Config(hidden_size=llm.hidden_size, num_hidden_layers=llm.num_layers,
                       num_attention_heads=llm.num_heads, num_key_value_heads=llm.num_kv_heads,
                       intermediate_size=llm.intermediate_size, vocab_size=llm.vocab_size,
                       rope_parameters={"rope_type": "default", "rope_theta": llm.rope_theta},
                       rms_norm_eps=llm.rms_norm_eps, max_position_embeddings=llm.max_length,
                       tie_word_embeddings=True, use_cache=False)


def llm_config(hf: Qwen2Config, llm: LLMConfig) -> LLMConfig:
    """`llm` with its architecture fields read from a transformers config."""
    return dataclasses.replace(llm, hidden_size=hf.hidden_size, num_layers=hf.num_hidden_layers,
                               num_heads=hf.num_attention_heads, num_kv_heads=hf.num_key_value_heads,
                               intermediate_size=hf.intermediate_size, vocab_size=hf.vocab_size,
                               rope_theta=float(hf.rope_parameters["rope_theta"]), rms_norm_eps=hf.rms_norm_eps)


def load_qwen2_config(path: str) -> Qwen2Config:
    return Qwen2Config.from_pretrained(path, use_cache=False)


class LanguageModel(nn.Module):
    def __init__(self, cfg: LLMConfig, hf: Qwen2Config, load_weights: bool):
        super().__init__()
        if load_weights and cfg.path:
            self.llm = Qwen2ForCausalLM.from_pretrained(cfg.path, config=hf, dtype=torch.float32)
        else:
            self.llm = Qwen2ForCausalLM(hf)
        d = hf.hidden_size
        # the embeddings of the added tokens live here, trainable even when the LLM is frozen or LoRA-tuned
        self.seg_embed = nn.Parameter(torch.randn(1, d) * 0.02)
        self.query_embed = nn.Parameter(torch.randn(cfg.num_queries, d) * 0.02)
        self.prompt_first = cfg.prompt_first

    @property
    def hidden_size(self) -> int:
        return self.llm.config.hidden_size

    def forward(self, image_tokens: torch.Tensor, input_ids: torch.Tensor,
                attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """image_tokens (B, M, d), input_ids / attention_mask (B, L) -> h_v (B, M, d), h_seg (B, d), h_q (B, Q, d)."""
        B, M, d = image_tokens.shape
        Q = self.query_embed.shape[0]
        embed = self.llm.get_input_embeddings()
        image_tokens = image_tokens.to(embed.weight.dtype)
        if self.prompt_first:
            parts = [embed(input_ids[:, :-M - Q - 1]), image_tokens]
        else:
            parts = [image_tokens, embed(input_ids[:, M:-Q - 1])]
        embeds = torch.cat(parts + [self.seg_embed.to(image_tokens.dtype).expand(B, 1, d),
                                    self.query_embed.to(image_tokens.dtype).expand(B, Q, d)], dim=1)
        # positions skip the padding, so a padded row sees the same positions as an unpadded one
        position_ids = (attention_mask.cumsum(-1) - 1).clamp_min(0)
        h = self.llm.model(inputs_embeds=embeds, attention_mask=attention_mask, position_ids=position_ids,
                           use_cache=False).last_hidden_state
        h_v = h[:, -M - Q - 1:-Q - 1] if self.prompt_first else h[:, :M]
        return h_v, h[:, -Q - 1], h[:, -Q:]
