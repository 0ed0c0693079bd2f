"""Patch naming: the object a pointing question names, patch labels from masks, the head's loss in a run."""

import json
import shutil

import numpy as np
import pytest
import torch

from pokevla.cli import main
from pokevla.common.errors import DatasetError
from pokevla.data.lerobot import encode_png
from pokevla.pretrain.chat import IGNORE
from pokevla.pretrain.data import ConversationDataset, open_sources
from pokevla.pretrain.families import POINT_OBJECT_PHRASINGS, POINTS
from pokevla.pretrain.patch_names import PatchNames, patch_labels, pointed_object
from pokevla.pretrain.records import format_points, make_record
from pokevla.pretrain.vlm import PokeVLM
from pokevla.train import checkpoints as ckpt

from .test_vlm import SMALL_FLAGS, colour_records, knowledge, one_thread, small, write_knowledge  # noqa: F401

SIZE = 32  # image side; SMALL's vision sees 32 px in 16 px patches: a 2 x 2 grid


@pytest.mark.parametrize("phrasing", POINT_OBJECT_PHRASINGS)
def test_the_pointed_object_is_read_from_every_phrasing_the_generator_writes(phrasing):
    assert pointed_object("<image>\n" + phrasing.format("black bowl") + POINTS) == "black bowl"


def test_other_questions_name_no_object():
    assert pointed_object("<image>\nIs there a plate in the image? Answer yes or no.") is None
    assert pointed_object("Point to the handle") is None  # no full stop: not a phrasing of the generator


def test_a_patch_takes_the_name_covering_most_of_it_if_a_third_or_more():
    # a 6 x 6 image in a 3 x 3 grid of 2 x 2 patches
    bowl, plate = np.zeros((6, 6), bool), np.zeros((6, 6), bool)
    bowl[0:2, 0:2] = True   # all of patch 0
    bowl[2, 2] = True       # a quarter of patch 4: too little alone
    plate[2:4, 2:4] = True  # patch 4 too, wholly: the plate wins there
    plate[4, 4:6] = True    # half of patch 8
    labels = patch_labels([bowl, plate], [1, 2], 3)
    assert labels.tolist() == [1, IGNORE, IGNORE, IGNORE, 2, IGNORE, IGNORE, IGNORE, 2]


def block_records(root):
    """Two images with a red block, at the top left and at the bottom right, each with its mask and a
    pointing question; and a yes/no question about the first."""
    records = []
    for k, (rows, cols) in enumerate([(slice(0, 16), slice(0, 16)), (slice(16, 32), slice(16, 32))]):
        image, mask = np.zeros((SIZE, SIZE, 3), np.uint8), np.zeros((SIZE, SIZE), np.uint8)
        image[rows, cols], mask[rows, cols] = (255, 0, 0), 255
        (root / "images").mkdir(parents=True, exist_ok=True)
        (root / f"images/block{k}.png").write_bytes(encode_png(image))
        (root / f"images/mask{k}.png").write_bytes(encode_png(mask))
        centre = (0.25 + 0.5 * k, 0.25 + 0.5 * k)
        records.append(make_record(f"p{k}", f"images/block{k}.png", POINT_OBJECT_PHRASINGS[k].format("red block") + POINTS,
                                   format_points([centre]), family="point_object", answer_type="point",
                                   target=f"images/mask{k}.png", scene=f"s{k}"))
    records.append(make_record("q", "images/block0.png", "Is there a red block? Answer yes or no.", "yes",
                               family="presence", answer_type="yesno", target="yes", scene="s0"))
    return records


@pytest.fixture
def blocks(tmp_path):
    root = tmp_path / "blocks"
    records = block_records(root)
    return write_knowledge(root, {"train": records, "val": records})


def test_every_record_of_a_named_image_carries_its_patch_labels(blocks):
    model = PokeVLM(small())
    (source, _), = open_sources(str(blocks), "")
    data = ConversationDataset([source], model.chat, SIZE, 256, name_patches=2)
    assert data.names.names == ["red block"]
    expected = {0: [1, IGNORE, IGNORE, IGNORE], 1: [IGNORE, IGNORE, IGNORE, 1], 2: [1, IGNORE, IGNORE, IGNORE]}
    for i, labels in expected.items():  # the yes/no question (2) is about the first image
        assert data[i]["patch_labels"].tolist() == [labels]
    batch = data.collate([data[0], data[1]])
    assert batch["patch_labels"].shape == (2, 4)
    assert "patch_labels" not in ConversationDataset([source], model.chat, SIZE, 256)[0]


def test_data_without_pointing_records_cannot_name_patches(knowledge):  # noqa: F811
    model = PokeVLM(small())
    (source, _), = open_sources(str(knowledge), "")
    with pytest.raises(DatasetError, match="needs generated point_object records"):
        ConversationDataset([source], model.chat, SIZE, 256, name_patches=2)


def test_the_head_adds_its_weighted_loss_and_learns(blocks):
    torch.manual_seed(0)
    model = PokeVLM(small(), "all")
    (source, _), = open_sources(str(blocks), "")
    data = ConversationDataset([source], model.chat, SIZE, 256, name_patches=model.config.grid)
    model.add_patch_head(data.names.names)
    batch = data.collate([data[i] for i in range(len(data))])
    plain, _ = model(batch)
    model.patch_weight = 0.5
    loss, metrics = model(batch)
    assert loss.item() == pytest.approx(plain.item() + 0.5 * metrics["patch_loss"], rel=1e-5)
    loss.backward()
    assert model.patch_head.weight.grad.abs().sum() > 0
    # without labels in the batch the loss is the answers' alone
    unlabelled = {k: v for k, v in batch.items() if k != "patch_labels"}
    assert model(unlabelled)[0].item() == pytest.approx(plain.item(), rel=1e-5)


def test_a_run_with_patch_naming_saves_resumes_and_answers(blocks, tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["pretrain", "--preset", "tiny", *SMALL_FLAGS, "--data", str(blocks), "--out", str(run),
            "--steps", "4", "--batch-size", "2", "--save-every", "2", "--val-every", "4", "--lr", "1e-3",
            "--train", "all", "--patch-names", "0.5"]
    assert main(argv) == 0
    shutil.rmtree(run / "checkpoints/step_0000004")  # stopped after step 2's checkpoint
    assert main(["pretrain", "--out", str(run), "--resume"]) == 0  # loads the head from step 2
    folder = ckpt.last_checkpoint(run)
    assert folder.name == "step_0000004"
    assert json.loads((folder / "config.json").read_text())["patch_names"] == ["red block"]
    assert json.loads((run / "run.json").read_text())["pretrain"]["patch_names"] == 0.5
    vlm = PokeVLM.from_pretrained(folder)
    assert vlm.patch_head.out_features == 2
    capsys.readouterr()
    assert main(["vlm", "eval", "--checkpoint", str(run), "--data", str(blocks), "--split", "val",
                 "--max-new-tokens", "4"]) == 0
    assert "| point_object |" in capsys.readouterr().out


def test_a_checkpoint_naming_other_objects_is_refused(blocks, tmp_path):
    model = PokeVLM(small())
    model.add_patch_head(["red block"])
    model.save_pretrained(tmp_path / "named")
    other = PokeVLM(small())
    other.add_patch_head(["blue block", "red block"])
    with pytest.raises(Exception, match="names other objects in its patch-naming head"):
        other.load_checkpoint(tmp_path / "named")


def test_a_negative_weight_is_one_line(blocks, tmp_path, bad_input):
    bad_input(["pretrain", "--preset", "tiny", "--data", blocks, "--out", tmp_path / "run", "--patch-names", "-1"],
              "--patch-names -1.0 is negative", untouched=[tmp_path / "run"])
