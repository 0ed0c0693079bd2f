"""PokeVLM: answer-only labels, generation that stops at the end of a turn, a tiny model that learns,
checkpoints, the data pipeline (skipped records, length-grouped resumable sampling) and the Qwen path."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pokevla.common.config import from_dict, to_dict
from pokevla.common.errors import CheckpointError
from pokevla.data.lerobot import encode_png
from pokevla.model.config import PokeVLAConfig, get_preset
from pokevla.pretrain.chat import IGNORE
from pokevla.pretrain.data import ConversationDataset, LengthGroupedSampler, open_sources
from pokevla.pretrain.records import make_record
from pokevla.pretrain.vlm import PokeVLM

COLOURS = {"red": (255, 0, 0), "blue": (0, 0, 255), "green": (0, 255, 0), "white": (255, 255, 255)}
QUESTION = "What colour is the picture?"
SMALL_VISION = {"vision.image_size": 32, "vision.dinov2.num_layers": 1, "vision.siglip.num_layers": 1,
                "vision.dinov2.hidden_size": 32, "vision.siglip.hidden_size": 32, "vision.dinov2.intermediate_size": 64,
                "vision.siglip.intermediate_size": 64}
SMALL = {**SMALL_VISION, "llm.num_layers": 1, "llm.hidden_size": 64, "llm.intermediate_size": 128}
# the same sizes as command-line flags, for the CLI tests
SMALL_FLAGS = [a for k, v in SMALL.items() for a in (f"--{k.replace('_', '-')}", str(v))]


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: the development machines' two cores are shared (see tests/model/conftest.py)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def small(preset: str = "tiny", sizes: dict = SMALL, **changes) -> PokeVLAConfig:
    """The preset with the tiny `sizes` (a second per few dozen steps on a CPU), and `changes`."""
    data = to_dict(get_preset(preset))
    for dotted, value in {**sizes, **changes}.items():
        node = data
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return from_dict(PokeVLAConfig, data)


def conversation(*pairs: str) -> list[dict]:
    turns = []
    for i, text in enumerate(pairs):
        turns.append({"from": "human" if i % 2 == 0 else "gpt", "value": text})
    return turns


def labelled_spans(ids: list[int], labels: list[int]) -> list[list[int]]:
    """The runs of consecutive labelled positions, as token ids; checks label == id where labelled."""
    spans, current = [], []
    for token, label in zip(ids, labels):
        if label == IGNORE:
            if current:
                spans.append(current)
            current = []
        else:
            assert label == token
            current.append(token)
    return spans + ([current] if current else [])


def write_knowledge(root: Path, splits: dict[str, list[dict]], extra_lines: dict[str, list[str]] | None = None) -> Path:
    """A generated knowledge folder: meta.json, one JSON-lines file per split, the images under images/."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "meta.json").write_text(json.dumps({"families": {"colour": {}}}))
    for split, records in splits.items():
        lines = [json.dumps(r) for r in records] + (extra_lines or {}).get(split, [])
        (root / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    return root


def colour_records(root: Path, prefix: str = "c") -> list[dict]:
    """One record per colour: a plain picture of it and the question which colour it is (yes/no-free text)."""
    records = []
    for name, rgb in COLOURS.items():
        path = root / "images" / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode_png(np.full((40, 40, 3), rgb, np.uint8)))
        records.append(make_record(f"{prefix}-{name}", f"images/{name}.png", QUESTION, name, family="colour",
                                   answer_type="text", target=name, scene=f"scene-{name}"))
    return records


@pytest.fixture
def knowledge(tmp_path) -> Path:
    root = tmp_path / "knowledge"
    records = colour_records(root)
    return write_knowledge(root, {"train": records, "val": records[:2], "heldout": records})


def test_labels_are_exactly_the_answer_tokens_of_every_gpt_turn():
    model = PokeVLM(small())
    turns = conversation("<image>\nWhat is on the table?", "a cup", "And its colour?", "red")
    ids, labels = model.chat.encode(turns, images=1)
    decode = model.tokenizer.decode
    assert [decode(span) for span in labelled_spans(ids, labels)] == ["a cup<eos>", "red<eos>"]
    patches = model.config.grid ** 2
    image_positions = [i for i, t in enumerate(ids) if t == model.token_ids.image]
    assert len(image_positions) == patches and image_positions == list(range(image_positions[0], image_positions[0] + patches))
    assert all(labels[i] == IGNORE for i in image_positions)
    # the human turns and the template's headers are context
    text = decode([t for t in ids if t != model.token_ids.image])
    assert text == "Q: \nWhat is on the table?\nA: a cup<eos>Q: And its colour?\nA: red<eos>"


def test_a_record_with_images_but_no_tag_gets_them_first_and_several_images_get_several_blocks():
    model = PokeVLM(small())
    ids, _ = model.chat.encode(conversation("Which is bigger?", "the left one"), images=2)
    is_image = (np.array(ids) == model.token_ids.image).astype(int)
    starts, ends = np.flatnonzero(np.diff(is_image) == 1) + 1, np.flatnonzero(np.diff(is_image) == -1) + 1
    assert (ends - starts).tolist() == [model.config.grid ** 2] * 2  # two blocks of one image's patches
    assert starts[0] == len(model.chat.tokens("Q: "))  # at the start of the first human turn


@pytest.mark.parametrize("qwen", [False, True])
def test_generation_stops_at_the_end_of_turn_token(qwen, qwen_folder):
    model = PokeVLM(qwen_config(qwen_folder) if qwen else small()).eval()
    first = model.chat.tokens("ok")[0]
    script = iter([first, model.chat.end_of_turn, first])
    # the language model is made to emit `first`, then the end of the turn, then `first` again
    model.language.llm.lm_head.register_forward_hook(lambda module, inputs, logits: logits.index_fill(
        -1, torch.tensor([next(script)]), 1e4))
    answer = model.generate([np.zeros((20, 30, 3), np.uint8)], QUESTION, max_new_tokens=20)
    assert answer == model.tokenizer.decode([first])


def test_a_tiny_vlm_learns_a_handful_of_records(knowledge):
    torch.manual_seed(0)
    model = PokeVLM(small(), "all")
    (source, _), = open_sources(str(knowledge), "")
    data = ConversationDataset([source], model.chat, model.config.vision.image_size, model.config.llm.max_length)
    batch = data.collate([data[i] for i in range(len(data))])
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for _ in range(40):
        loss, _ = model(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]
    for name, rgb in COLOURS.items():
        assert model.generate([np.full((40, 40, 3), rgb, np.uint8)], QUESTION, max_new_tokens=20) == name


def test_only_the_chosen_parts_train():
    counts = {}
    for train in ("projector", "llm", "lora", "all"):
        model = PokeVLM(small(), train)
        trainable = {name.split(".")[0] for name, p in model.named_parameters() if p.requires_grad}
        counts[train] = trainable
        assert not any(p.requires_grad for n, p in model.named_parameters() if n.endswith(("seg_embed", "query_embed")))
    assert counts == {"projector": {"projector"}, "llm": {"projector", "language"}, "lora": {"projector", "language"},
                      "all": {"projector", "language", "vision"}}
    lora = PokeVLM(small(), "lora")
    assert all("lora_" in n for n, p in lora.language.named_parameters() if p.requires_grad)


def test_a_checkpoint_round_trips_and_is_not_mistaken_for_a_policy(tmp_path):
    from pokevla.model.pokevla import PokeVLA

    torch.manual_seed(0)
    model = PokeVLM(small(), "lora")
    model.save_pretrained(tmp_path / "vlm")
    loaded = PokeVLM.from_pretrained(tmp_path / "vlm")
    assert loaded.trains == "lora" and loaded.tokenizer.chat_template == model.tokenizer.chat_template
    state, again = model.state_dict(), loaded.state_dict()
    assert all(torch.equal(state[k], again[k]) for k in state)
    with pytest.raises(CheckpointError, match="stage-1 PokeVLM"):
        PokeVLA.from_pretrained(tmp_path / "vlm")


def test_malformed_and_overlong_records_are_skipped_with_one_line_each(knowledge):
    records = colour_records(knowledge)
    long = make_record("long", "images/red.png", "why? " * 200, "because", family="colour", answer_type="text",
                       target="x", scene="s")
    write_knowledge(knowledge, {"train": records + [long]}, {"train": ["{not json", json.dumps({"id": "x"})]})
    model = PokeVLM(small())
    lines = []
    (source, _), = open_sources(str(knowledge), "")
    data = ConversationDataset([source], model.chat, 32, 256, warn=lines.append)
    assert len(data) == 4 and data.skipped == 3 and len(lines) == 3
    train = str(knowledge / "train.jsonl")
    assert all(line.startswith(train) and line.endswith("skipped") for line in lines)
    assert "record long" in lines[0] and "more than llm.max_length 256" in lines[0]
    assert data.skip_summary("training") == ("3 training record(s) skipped (1 longer than llm.max_length 256: "
                                             "a larger --llm.max-length keeps them); 4 used")


def test_an_undecodable_image_drops_its_sample_from_the_batch(knowledge):
    (knowledge / "images/blue.png").write_bytes(b"not a png")
    model = PokeVLM(small())
    lines = []
    (source, _), = open_sources(str(knowledge), "")
    data = ConversationDataset([source], model.chat, 32, 384, warn=lines.append)
    batch = data.collate([data[i] for i in range(len(data))])
    assert batch["input_ids"].shape[0] == 3 and batch["pixel_values"].shape == (3, 3, 32, 32)
    assert len(lines) == 1 and "record c-blue: image images/blue.png cannot be decoded" in lines[0]


def test_length_grouped_sampler_groups_resumes_and_weights_sources():
    lengths = np.array([5, 50, 7, 48, 6, 52, 9, 45] * 4)
    images = np.zeros(len(lengths), dtype=int)
    sampler = LengthGroupedSampler(lengths, images, batch=4, seed=1)
    stream = [i for _, i in zip(range(96), iter(sampler))]
    assert sorted(stream[:32]) == list(range(32)) and stream[:32] != stream[32:64]
    # one megabatch per epoch here: sorted longest first, so a batch of 4 holds similar lengths
    assert list(lengths[stream[:32]]) == sorted(lengths, reverse=True)
    resumed = LengthGroupedSampler(lengths, images, batch=4, seed=1, start=37)
    assert [i for _, i in zip(range(40), iter(resumed))] == stream[37:77]
    ranks = [[i for _, i in zip(range(8), iter(LengthGroupedSampler(lengths, images, 4, 1, rank=r, world_size=2)))]
             for r in (0, 1)]
    assert ranks[0] == stream[0:16:2] and ranks[1] == stream[1:16:2]
    # two sources of 16 records, weights 2 and 0.5: 32 + 8 draws per epoch
    mixed = LengthGroupedSampler(lengths, images, batch=4, seed=1, sizes=[16, 16], weights=[2.0, 0.5])
    epoch = [i for _, i in zip(range(40), iter(mixed))]
    assert sum(i < 16 for i in epoch) == 32 and sum(i >= 16 for i in epoch) == 8


# --- the 1b path: a Qwen2 checkpoint and a Qwen2.5-style chat template, built here (no download) ---

QWEN_TEMPLATE = (
    "{% if messages[0]['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture(scope="module")
def qwen_folder(tmp_path_factory) -> str:
    """A tiny random Qwen2ForCausalLM with a byte-level BPE tokenizer holding Qwen's chat tokens
    (`<|endoftext|>` pad, `<|im_start|>`, `<|im_end|>` eos) and a chat template in Qwen2.5's format."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = [f"{QUESTION} {name}. Which is bigger? The left one is. What is on the table? a cup" for name in COLOURS] * 5
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                        additional_special_tokens=["<|im_start|>"])
    tokenizer.chat_template = QWEN_TEMPLATE
    folder = tmp_path_factory.mktemp("qwen") / "qwen2"
    torch.manual_seed(5)
    Qwen2ForCausalLM(Qwen2Config(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                                 num_key_value_heads=2, vocab_size=len(tokenizer), tie_word_embeddings=True,
                                 rope_parameters={"rope_type": "default", "rope_theta": 1000000.0})
                     ).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def qwen_config(folder: str) -> PokeVLAConfig:
    """Preset 1b with its language model read from `folder` and small from-scratch encoders."""
    return small("1b", SMALL_VISION, **{"llm.path": folder, "vision.image_size": 28, "vision.dinov2.patch_size": 14,
                          "vision.siglip.patch_size": 14, "vision.dinov2.pos_embed_size": 28,
                          "vision.siglip.pos_embed_size": 28})


def test_qwen_template_labels_and_pretrained_weights(qwen_folder):
    from transformers import Qwen2ForCausalLM

    model = PokeVLM(qwen_config(qwen_folder))
    assert model.config.llm.hidden_size == 64 and model.config.llm.num_layers == 2  # the folder decides
    reference = Qwen2ForCausalLM.from_pretrained(qwen_folder).state_dict()
    assert all(torch.equal(model.language.llm.state_dict()[k], v) for k, v in reference.items())
    end = model.tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert model.chat.end_of_turn == end
    ids, labels = model.chat.encode(conversation("<image>\nWhat is on the table?", "a cup", "Which is bigger?",
                                                 "The left one is."), images=1)
    spans = labelled_spans(ids, labels)
    assert [model.tokenizer.decode(s) for s in spans] == ["a cup<|im_end|>", "The left one is.<|im_end|>"]
    text = model.tokenizer.decode([t for t in ids if t != model.token_ids.image])
    assert text.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n")
    assert text.endswith("<|im_start|>assistant\nThe left one is.<|im_end|>\n")  # the newline is context
    assert ids.count(model.token_ids.image) == model.config.grid ** 2 == 4
    prompt = model.tokenizer.decode([t for t in model.chat.prompt(QUESTION, 1) if t != model.token_ids.image])
    assert prompt.endswith(f"<|im_start|>user\n\n{QUESTION}<|im_end|>\n<|im_start|>assistant\n")


@pytest.mark.parametrize("qwen", [False, True])
def test_batched_generation_answers_as_one_at_a_time(qwen, qwen_folder):
    torch.manual_seed(1)
    model = PokeVLM(qwen_config(qwen_folder) if qwen else small()).eval()
    rng = np.random.default_rng(0)
    items = [([rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)], "what is it?"),
             ([], "a question without an image, and a much longer one than the others"),
             ([rng.integers(0, 255, (30, 20, 3), dtype=np.uint8)] * 2, "<image> left, <image> right: same?")]
    one_by_one = [model.generate(images, question, max_new_tokens=12) for images, question in items]
    assert model.generate_batch(items, max_new_tokens=12) == one_by_one
    assert any(one_by_one)  # an untrained model still says something, so the comparison is not of empty strings
