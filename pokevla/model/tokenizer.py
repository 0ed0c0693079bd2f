"""Tokenizers: the language model's own (from its local folder) or a byte-level one built in code.

Three placeholder tokens are added to either: `<image>` (one per visual patch), `<SEG>` and `<ACT>`
(one per action query). Their input embeddings are never looked up in the language model's table:
the model writes projected patch features and its own learned `<SEG>`/query embeddings at those
positions, so the vocabulary needs no resizing and the new embeddings stay trainable under LoRA.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pokevla.common.errors import ConfigError

IMAGE_TOKEN = "<image>"
SEG_TOKEN = "<SEG>"
ACTION_TOKEN = "<ACT>"
PLACEHOLDERS = (IMAGE_TOKEN, SEG_TOKEN, ACTION_TOKEN)


@dataclass(frozen=True)
class TokenIds:
    pad: int
    image: int
    seg: int
    action: int


def byte_tokenizer():
    """A byte-level tokenizer (256 byte tokens + `<eos>` + `<pad>`): no download, no training."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tok = Tokenizer(models.BPE(vocab={ch: i for i, ch in enumerate(alphabet)}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>")


def load_tokenizer(path: str | Path | None):
    """The tokenizer in `path` (an LLM or checkpoint folder), or the byte tokenizer; placeholders added."""
    if path is None:
        tokenizer = byte_tokenizer()
    else:
        from transformers import AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(str(path))
        except (OSError, ValueError) as e:
            raise ConfigError(f"cannot load a tokenizer from {path}: {e}") from None
        if tokenizer.pad_token is None:
            if tokenizer.eos_token is None:
                raise ConfigError(f"the tokenizer in {path} has neither a pad nor an eos token")
            tokenizer.pad_token = tokenizer.eos_token
    tokenizer.add_tokens(list(PLACEHOLDERS), special_tokens=True)
    return tokenizer


def token_ids(tokenizer, vocab_size: int) -> TokenIds:
    """The placeholder ids; every other id must fit the language model's embedding table."""
    ids = TokenIds(pad=tokenizer.pad_token_id, **{
        name: tokenizer.convert_tokens_to_ids(tok) for name, tok in zip(("image", "seg", "action"), PLACEHOLDERS)})
    if len(tokenizer) - len(PLACEHOLDERS) > vocab_size or ids.pad >= vocab_size:
        raise ConfigError(f"the tokenizer has {len(tokenizer) - len(PLACEHOLDERS)} tokens but the language model's "
                          f"vocabulary only {vocab_size} (llm.vocab_size)")
    return ids
