"""Shared fixtures: the tiny preset, statistics, config overrides, and tiny random Hugging Face
checkpoints written by transformers' own classes (no download)."""

from __future__ import annotations

import json

import pytest
import torch

from pokevla.common.config import from_dict, to_dict
from pokevla.model.config import PokeVLAConfig, get_preset
from pokevla.model.pokevla import PokeVLA
from pokevla.model.synthetic import synthetic_stats


@pytest.fixture(autouse=True, scope="package")
def one_thread():
    """One torch thread: the dev machines' 2 cores are shared with simulators, and OpenMP threads
    waiting for a busy core make these small ops ~10x slower than one thread does."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def override(config: PokeVLAConfig, changes: dict) -> PokeVLAConfig:
    """`config` with dotted fields replaced, e.g. {"loss.seg_weight": 0.0}."""
    data = to_dict(config)
    for dotted, value in changes.items():
        node = data
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return from_dict(PokeVLAConfig, data)


@pytest.fixture
def tiny() -> PokeVLAConfig:
    return get_preset("tiny")


@pytest.fixture
def stats(tiny) -> dict:
    return synthetic_stats(tiny)


@pytest.fixture
def make_model(stats):
    """make_model(config=tiny, seed=0, **kwargs) -> a PokeVLA with seeded random weights."""
    def make(config: PokeVLAConfig | None = None, seed: int = 0, **kwargs) -> PokeVLA:
        torch.manual_seed(seed)
        return PokeVLA(config or get_preset("tiny"), kwargs.pop("stats", stats), **kwargs)
    return make


def _bpe_tokenizer():
    """A small BPE tokenizer trained in code, with an eos and no pad token (like Qwen's base models)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = ["In: What action should the robot take to put the bowl on the plate?\nOut:",
              "pick up the alphabet soup and place it in the basket", "open the top drawer of the cabinet"] * 10
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>")


@pytest.fixture(scope="session")
def hf_checkpoints(tmp_path_factory) -> dict:
    """Folders of tiny random DINOv2, SigLIP (a full SiglipModel: text tower too) and Qwen2 + tokenizer.

    Their sizes differ from the tiny preset's on purpose (the folder must decide), and DINOv2's
    position embeddings are stored for 64 px (interpolated to the model's 128 px).
    """
    from transformers import (Dinov2Config, Dinov2Model, Qwen2Config, Qwen2ForCausalLM, SiglipConfig,
                              SiglipModel)

    root = tmp_path_factory.mktemp("hf")
    torch.manual_seed(123)
    Dinov2Model(Dinov2Config(hidden_size=48, num_hidden_layers=2, num_attention_heads=4, mlp_ratio=2,
                             image_size=64, patch_size=16)).save_pretrained(root / "dinov2")
    (root / "dinov2" / "preprocessor_config.json").write_text(json.dumps(
        {"image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}))
    SiglipModel(SiglipConfig(
        vision_config=dict(hidden_size=40, intermediate_size=80, num_hidden_layers=2, num_attention_heads=2,
                           image_size=128, patch_size=16),
        text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                         vocab_size=100))).save_pretrained(root / "siglip")
    tokenizer = _bpe_tokenizer()
    Qwen2ForCausalLM(Qwen2Config(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                                 num_key_value_heads=2, vocab_size=len(tokenizer), tie_word_embeddings=True,
                                 rope_parameters={"rope_type": "default", "rope_theta": 5000.0})
                     ).save_pretrained(root / "qwen2")
    tokenizer.save_pretrained(root / "qwen2")
    return {"dinov2": str(root / "dinov2"), "siglip": str(root / "siglip"), "qwen2": str(root / "qwen2")}
