"""Stage-1 augmentation: a crop keeps every pointing and box answer true, other records keep their
images whole, colour jitter keeps colours' names, and a training set tokenises a cropped answer again."""

import numpy as np
import pytest
import torch

from pokevla.data.lerobot import encode_png
from pokevla.pretrain.augment import Augment, jitter_colour
from pokevla.pretrain.data import ConversationDataset, open_sources
from pokevla.pretrain.records import format_box, format_points, make_record
from pokevla.pretrain.scoring import find_tuples
from pokevla.pretrain.vlm import PokeVLM
from tests.pretrain.test_vlm import small, write_knowledge

HEIGHT, WIDTH = 60, 80
MASK = np.zeros((HEIGHT, WIDTH), bool)
MASK[20:35, 30:50] = True  # the named object's visible pixels


def coordinate_image() -> np.ndarray:
    """Each pixel holds its own (column, row): a crop's first pixel says where it was cut."""
    rows, cols = np.mgrid[:HEIGHT, :WIDTH]
    return np.stack([cols, rows, np.full_like(rows, 255)], axis=-1).astype(np.uint8)


def turns(answer: str) -> list[dict]:
    return [{"from": "human", "value": "<image>\nPoint to the bowl."}, {"from": "gpt", "value": answer}]


def test_a_cropped_pointing_answer_still_lands_on_the_object():
    points = [((c + 0.5) / WIDTH, (r + 0.5) / HEIGHT) for r, c in [(21, 31), (33, 48), (27, 40)]]
    answer = format_points(points)
    augment, cropped = Augment(crop_scale=0.3), 0
    for seed in range(50):
        (image,), new = augment([coordinate_image()], turns(answer), np.random.default_rng(seed))
        left, top = int(image[0, 0, 0]), int(image[0, 0, 1])
        mask = MASK[top:top + image.shape[0], left:left + image.shape[1]]
        if new[1]["value"] == answer:  # no crop held every point: the whole image is kept
            assert image.shape[:2] == (HEIGHT, WIDTH)
            continue
        cropped += image.shape[:2] != (HEIGHT, WIDTH)
        moved = [values for values, normalised in find_tuples(new[1]["value"]) if normalised]
        assert len(moved) == 3
        for x, y in moved:
            assert mask[int(y * image.shape[0]), int(x * image.shape[1])]
    assert cropped >= 25


def test_a_cropped_box_is_the_objects_box_in_the_crop():
    box = (30 / WIDTH, 20 / HEIGHT, 50 / WIDTH, 35 / HEIGHT)
    augment = Augment(crop_scale=0.4)
    for seed in range(20):
        (image,), new = augment([coordinate_image()], turns(format_box(box)), np.random.default_rng(seed))
        left, top = int(image[0, 0, 0]), int(image[0, 0, 1])
        (x1, y1, x2, y2), = [v for v, _ in find_tuples(new[1]["value"])]
        h, w = image.shape[:2]
        assert (x1 * w + left, y1 * h + top, x2 * w + left, y2 * h + top) == pytest.approx((30, 20, 50, 35), abs=0.1)


def test_records_whose_answers_a_crop_could_falsify_keep_the_whole_image():
    augment = Augment(crop_scale=0.3)
    image = coordinate_image()
    for family, answer in [("presence", "yes"), ("count", "2"), ("refer_anchor", "[(0.5, 0.5)]"), (None, "[(0.5, 0.5)]")]:
        record = {"family": family, "image": "f.png", "conversations": turns(answer)}
        assert not augment.may_crop(record)
        (out,), new = augment([image], None, np.random.default_rng(0))  # what the dataset passes for them
        assert out is image and new is None
    assert augment.may_crop({"family": "point_object", "image": "f.png"})
    assert not Augment().may_crop({"family": "point_object", "image": "f.png"})  # cropping is off
    # two views, or a point on the border that no crop holds
    assert not augment.may_crop({"family": "point_object", "image": ["a.png", "b.png"]})
    views, _ = augment([image, image], turns("[(0.5, 0.5)]"), np.random.default_rng(0))
    assert all(v is image for v in views)
    (out,), _ = augment([image], turns("[(0.000, 0.000), (0.999, 0.999)]"), np.random.default_rng(0))
    assert out is image


def test_colour_jitter_changes_tone_but_not_hue():
    rng = np.random.default_rng(0)
    grey = np.full((8, 8, 3), 120, np.uint8)
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 0] = 200
    for _ in range(10):
        out = jitter_colour(grey, 0.3, rng)
        assert out.dtype == np.uint8 and out.shape == grey.shape
        assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()  # grey stays grey
        r, g, b = jitter_colour(red, 0.3, rng)[0, 0].astype(int)
        assert r > 100 and r > 3 * max(g, b)  # red stays red
    assert (jitter_colour(grey, 0.0, rng) == grey).all()


def test_a_training_set_tokenises_a_cropped_answer_again(tmp_path):
    from PIL import Image

    (tmp_path / "k/images").mkdir(parents=True)
    Image.fromarray(coordinate_image()).save(tmp_path / "k/images/f.png")
    (tmp_path / "k/images/m.png").write_bytes(encode_png(MASK.astype(np.uint8) * 255))
    answer = format_points([(0.5, 0.45)])
    record = make_record("p", "images/f.png", "Point to the bowl.", answer, family="point_object",
                         answer_type="point", target="images/m.png", scene="s")
    write_knowledge(tmp_path / "k", {"train": [record]})
    model = PokeVLM(small())
    (source, _), = open_sources(str(tmp_path / "k"), "")
    plain = ConversationDataset([source], model.chat, 32, 384)
    augmented = ConversationDataset([source], model.chat, 32, 384, augment=Augment(crop_scale=0.3))
    def answer_text(sample: dict) -> str:
        return model.tokenizer.decode(sample["labels"][sample["labels"] >= 0].tolist())

    after_answer = answer_text(plain[0]).removeprefix(answer)  # the end-of-turn tokens
    assert answer_text(plain[0]) != after_answer
    torch.manual_seed(0)
    answers = {answer_text(augmented[0]) for _ in range(10)}
    assert len(answers) > 1  # crops differ from draw to draw, and the labels follow them
    for text in answers:
        (values, normalised), = find_tuples(text)
        assert normalised and text == format_points([values]) + after_answer
