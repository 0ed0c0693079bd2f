"""The knowledge record format: writing and reading back, the point convention, the record checks."""

import json

import numpy as np
import pytest

from pokevla.common.errors import DatasetError
from pokevla.common.io import append_jsonl
from pokevla.data.lerobot import encode_png
from pokevla.pretrain.records import (format_box, format_points, iter_records, make_record, record_images,
                                      record_problem)


def generated(folder):
    """Three generated records (a point, a box with two images, a text-only count) with their files."""
    (folder / "images").mkdir(parents=True)
    for name in ("a.png", "b.png", "mask.png"):
        (folder / "images" / name).write_bytes(encode_png(np.zeros((4, 4), np.uint8)))
    return [
        make_record("p0", "images/a.png", "Point to the bowl.", format_points([(0.25, 0.5)]),
                    family="point_object", answer_type="point", target="images/mask.png", scene="s0"),
        make_record("b0", ["images/a.png", "images/b.png"], "Box the plate.", format_box([0.1, 0.2, 0.3, 0.4]),
                    family="box_object", answer_type="box", target=[0.1, 0.2, 0.3, 0.4], scene="s0"),
        make_record("c0", None, "How many arms has a Panda robot?", "1",
                    family="count_text", answer_type="count", target=1, scene="s1"),
    ]


def test_records_written_as_json_lines_read_back_equal(tmp_path):
    records = generated(tmp_path)
    for record in records:
        append_jsonl(tmp_path / "train.jsonl", record)
    assert list(iter_records(tmp_path / "train.jsonl")) == records


def test_records_written_as_a_json_list_read_back_equal(tmp_path):
    records = generated(tmp_path)
    (tmp_path / "train.json").write_text(json.dumps(records, indent=2), encoding="utf-8")
    assert list(iter_records(tmp_path / "train.json")) == records


def generated_in_memory():
    kinds = dict(family="f", scene="s")
    return (make_record("p", "a.png", "Point to the bowl.", "[(0.500, 0.500)]", answer_type="point",
                        target="m.png", **kinds),
            make_record("b", ["a.png", "b.png"], "Box it.", "[(0.1, 0.1, 0.2, 0.2)]", answer_type="box",
                        target=[0.1, 0.1, 0.2, 0.2], **kinds),
            make_record("t", None, "Count.", "2", answer_type="count", target=2, **kinds))


def test_a_record_has_one_image_tag_per_image_in_its_first_turn():
    point, box, text_only = generated_in_memory()
    assert point["conversations"][0]["value"] == "<image>\nPoint to the bowl."
    assert box["conversations"][0]["value"].startswith("<image>\n<image>\nBox")
    assert "image" not in text_only and text_only["conversations"][0]["value"] == "Count."
    assert record_images(box) == ["a.png", "b.png"] and record_images(text_only) == []


def test_make_record_refuses_an_unknown_answer_type():
    with pytest.raises(ValueError, match="answer_type 'points' is not one of point, box"):
        make_record("x", "a.png", "q", "a", family="f", answer_type="points", target="m.png", scene="s")


def test_points_and_boxes_are_written_with_three_decimals():
    assert format_points([(0.4612, 0.5274), (0, 1)]) == "[(0.461, 0.527), (0.000, 1.000)]"
    assert format_box((0.1, 0.25, 0.3333, 1)) == "[(0.100, 0.250, 0.333, 1.000)]"
    assert format_points([]) == "[]"


def valid():
    return {"id": "r", "image": "a.png", "conversations": [{"from": "human", "value": "<image>\nQ"},
                                                           {"from": "gpt", "value": "A"}]}


def with_(**changes):
    record = valid()
    record.update(changes)
    return {k: v for k, v in record.items() if v is not None}


def scored(answer_type, target, **extra):
    return with_(family="f", answer_type=answer_type, target=target, **extra)


PROBLEMS = [
    ([1, 2], "not a JSON object"),
    (with_(id=None), "no id"),
    (with_(conversations=[{"from": "human", "value": "<image>\nQ"}]), "no conversation of at least two turns"),
    (with_(conversations=[{"from": "human", "value": "Q"}, {"from": "gpt"}]), "turn 1 has no text value"),
    (with_(conversations=[{"from": "gpt", "value": "Q"}, {"from": "human", "value": "A"}]),
     "turn 0 is from 'gpt', expected 'human'"),
    (with_(image=7), "image is neither a path nor a list of paths"),
    (with_(image=[]), "image is neither a path nor a list of paths"),
    (with_(image=["a.png", "b.png"]), "1 <image> tag(s) for 2 image(s)"),
    (with_(image=None), "1 <image> tag(s) for 0 image(s)"),
    (scored("points", "m.png"), "answer_type 'points' is not one of"),
    (with_(answer_type="count", target=2), "a record with an answer_type needs a family"),
    (scored("point", [0.5, 0.5]), "a point target must be the path of a mask image"),
    (scored("box", [0.1, 0.2, 0.3]), "a box target must be [x1, y1, x2, y2]"),
    (scored("box", [0.1, 0.2, 0.3, 1.5]), "a box target lies outside [0, 1]"),
    (scored("count", -1), "a count target must be an integer >= 0"),
    (scored("count", 2.5), "a count target must be an integer >= 0"),
    (scored("count", True), "a count target must be an integer >= 0"),
    (scored("distance", 0), "a distance target must be a number of centimetres > 0"),
    (scored("distance", "1 m"), "a distance target must be a number of centimetres > 0"),
    (scored("trace", [[0.1, 0.2]]), "a trace target must be a list of at least 2 points [x, y] in [0, 1]"),
    (scored("trace", [[0.1, 0.2], [0.3, 1.2]]), "a trace target must be a list of at least 2 points [x, y] in [0, 1]"),
    (scored("yesno", ""), "a yesno target must be the answer text"),
    (scored("choice", None), "a choice target must be the answer text"),
]


@pytest.mark.parametrize("record, problem", PROBLEMS, ids=[p for _, p in PROBLEMS])
def test_record_problem_names_what_is_wrong(record, problem):
    assert problem in record_problem(record)


def test_valid_records_have_no_problem(tmp_path):
    assert record_problem(valid()) is None
    assert record_problem(scored("distance", 35)) is None
    assert record_problem(scored("count", 0)) is None
    assert record_problem(scored("trace", [[0.1, 0.2], [0.3, 0.4]])) is None
    text_only = with_(image=None, conversations=[{"from": "human", "value": "Q"}, {"from": "gpt", "value": "A"}])
    assert record_problem(text_only) is None


def test_record_problem_checks_the_files_under_root(tmp_path):
    assert record_problem(valid(), tmp_path) == "image a.png is missing"
    (tmp_path / "a.png").write_bytes(b"png")
    assert record_problem(valid(), tmp_path) is None
    assert record_problem(scored("point", "masks/m.png"), tmp_path) == "mask masks/m.png is missing"


def test_bad_records_are_skipped_and_reported_in_one_line_each(tmp_path):
    (tmp_path / "a.png").write_bytes(b"png")
    good = valid()
    lines = [json.dumps(good), "{not json", json.dumps(with_(id="b", image="gone.png")), "",
             json.dumps(with_(id="c", conversations=[]))]
    (tmp_path / "k.jsonl").write_text("\n".join(lines) + "\n")
    skipped = []
    assert list(iter_records(tmp_path / "k.jsonl", on_skip=skipped.append)) == [good]
    file = tmp_path / "k.jsonl"
    assert skipped == [f"{file} line 2: not valid JSON; record skipped",
                       f"{file} line 3 (id 'b'): image gone.png is missing; record skipped",
                       f"{file} line 5 (id 'c'): no conversation of at least two turns; record skipped"]


def test_a_further_check_skips_records_too(tmp_path):
    (tmp_path / "a.png").write_bytes(b"png")
    (tmp_path / "k.json").write_text(json.dumps([valid(), with_(id="s")]))
    skipped = []
    kept = list(iter_records(tmp_path / "k.json", check=lambda r: "too short" if r["id"] == "s" else None,
                             on_skip=skipped.append))
    assert kept == [valid()] and skipped == [f"{tmp_path / 'k.json'} record 2 (id 's'): too short; record skipped"]


def test_a_file_with_a_byte_order_mark_is_read(tmp_path):
    (tmp_path / "a.png").write_bytes(b"png")
    (tmp_path / "k.json").write_text("\ufeff" + json.dumps([valid()]), encoding="utf-8")
    assert list(iter_records(tmp_path / "k.json")) == [valid()]


@pytest.mark.parametrize("content, message", [
    (None, "cannot read"),
    ('[{"id": 1}', "is not valid JSON"),
    (b"\xff\xfe\x00", "is not UTF-8 text"),
    ('{\n  "generator": {"seed": 0}\n}\n', "holds one JSON object, not records"),
])
def test_an_unreadable_file_is_one_dataset_error(tmp_path, content, message):
    path = tmp_path / "k.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(DatasetError, match=message) as e:
        list(iter_records(path))
    assert "\n" not in str(e.value)
