"""Qwen2 and its tokenizer loaded from a local folder give transformers' own outputs."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoTokenizer, Qwen2ForCausalLM

from pokevla.common.errors import ConfigError
from pokevla.model.tokenizer import PLACEHOLDERS, byte_tokenizer, load_tokenizer, token_ids

from .conftest import override


@pytest.mark.parametrize("prompt_first", [False, True])
def test_loaded_language_model_matches_transformers(make_model, tiny, hf_checkpoints, prompt_first):
    model = make_model(override(tiny, {"llm.path": hf_checkpoints["qwen2"], "llm.prompt_first": prompt_first}))
    assert (model.config.llm.hidden_size, model.config.llm.rope_theta) == (64, 5000.0)
    reference = Qwen2ForCausalLM.from_pretrained(hf_checkpoints["qwen2"]).eval()
    ids = torch.randint(0, 300, (2, 12))
    with torch.no_grad():
        torch.testing.assert_close(model.language.llm(input_ids=ids).logits, reference(input_ids=ids).logits)

    # through our forward: images and a padded prompt (in the configured order), <SEG> and the queries
    B, M, Q, d = 2, 5, tiny.llm.num_queries, 64
    image_tokens = torch.randn(B, M, d)
    text = torch.randint(0, 300, (B, 7))
    placeholders = torch.zeros(B, M, dtype=torch.long)
    first, second = (text, placeholders) if prompt_first else (placeholders, text)
    ids = torch.cat([first, second, torch.zeros(B, 1 + Q, dtype=torch.long)], 1)
    mask = torch.ones_like(ids)
    padding = slice(4, 7) if prompt_first else slice(M, M + 3)  # between the prompt and the images
    mask[0, padding] = 0
    with torch.no_grad():
        h_v, h_seg, h_q = model.language(image_tokens, ids, mask)
        words = reference.get_input_embeddings()(text)
        first, second = (words, image_tokens) if prompt_first else (image_tokens, words)
        embeds = torch.cat([first, second, model.language.seg_embed.expand(B, 1, d),
                            model.language.query_embed.expand(B, Q, d)], 1)
        hidden = reference(inputs_embeds=embeds, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp_min(0),
                           output_hidden_states=True).hidden_states[-1]
    torch.testing.assert_close(h_v, hidden[:, 7:7 + M] if prompt_first else hidden[:, :M])
    torch.testing.assert_close(h_seg, hidden[:, -Q - 1])
    torch.testing.assert_close(h_q, hidden[:, -Q:])


def test_tokenizer_comes_from_the_language_model_folder(make_model, tiny, hf_checkpoints):
    model = make_model(override(tiny, {"llm.path": hf_checkpoints["qwen2"]}))
    original = AutoTokenizer.from_pretrained(hf_checkpoints["qwen2"])
    text = "put the bowl on the plate"
    assert model.tokenizer(text)["input_ids"] == original(text)["input_ids"]
    ids = model.token_ids
    assert sorted([ids.image, ids.seg, ids.action]) == [320, 321, 322]
    assert model.tokenizer.pad_token == "<|endoftext|>"  # the LLM had no pad token: eos pads


def test_byte_tokenizer_needs_no_download():
    tok = load_tokenizer(None)
    assert len(tok) == 256 + 2 + len(PLACEHOLDERS)
    ids = tok("pick é", add_special_tokens=False)["input_ids"]
    assert len(ids) == 7 and tok.decode(ids) == "pick é"
    assert tok("<SEG><ACT>", add_special_tokens=False)["input_ids"] == [tok.convert_tokens_to_ids("<SEG>"),
                                                                       tok.convert_tokens_to_ids("<ACT>")]
    assert len(byte_tokenizer()) == 258


def test_vocabulary_must_cover_the_tokenizer():
    with pytest.raises(ConfigError, match="the tokenizer has 258 tokens but the language model's vocabulary only 200"):
        token_ids(load_tokenizer(None), vocab_size=200)
