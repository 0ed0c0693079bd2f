"""Reading the public formats and our generated folders, mixing them, and skipping bad records."""

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from pokevla.common.errors import ConfigError, DatasetError
from pokevla.data.lerobot import encode_png
from pokevla.pretrain.formats import MixSampler, Mixture, load_source, open_source, parse_mix, read_source
from pokevla.pretrain.records import format_points, make_record


def png(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_png(np.zeros((4, 4, 3), np.uint8)))


def item(id, answer, image="coco/1.jpg", question="What is on the table?", **extra):
    first = f"<image>\n{question}" if image is not None else question
    record = {"id": id, "conversations": [{"from": "human", "value": first}, {"from": "gpt", "value": answer}],
              **extra}
    return record if image is None else {"image": image, **record}


def write(path: Path, records, lines=False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(json.dumps(r) for r in records) if lines else json.dumps(records, indent=1)
    path.write_text(text, encoding="utf-8")
    return path


def without_root(records):
    return [{k: v for k, v in r.items() if k != "root"} for r in records]


def test_llava_instruct_with_text_only_and_multi_turn_items(tmp_path):
    png(tmp_path / "coco/1.jpg")
    multi = item("2", "A cup.")
    multi["conversations"] += [{"from": "human", "value": "What colour is it?"}, {"from": "gpt", "value": "Red."}]
    records = [item("1", "A bowl and a plate."), multi, item("3", "Paris.", image=None, question="Capital of France?")]
    source = open_source(write(tmp_path / "llava_mix.json", records))
    assert (source.format, source.root, source.split) == ("llava", tmp_path, None)
    read = list(read_source(source))
    assert without_root(read) == records and {r["root"] for r in read} == {str(tmp_path)}


def test_json_lines_and_an_images_subfolder_are_found(tmp_path):
    png(tmp_path / "images/coco/1.jpg")
    source = open_source(write(tmp_path / "llava.jsonl", [item("1", "A bowl.")], lines=True))
    assert source.root == tmp_path / "images"
    assert [r["id"] for r in read_source(source)] == ["1"]
    assert open_source(tmp_path / "llava.jsonl", image_root=tmp_path).root == tmp_path


def test_llava_records_with_an_image_tag_out_of_place_are_skipped(tmp_path):
    png(tmp_path / "coco/1.jpg")
    late = item("2", "No.")
    late["conversations"][0]["value"] = "Is it raining?"  # the tag comes in the second question
    late["conversations"] += [{"from": "human", "value": "<image>\nAnd now?"}, {"from": "gpt", "value": "Yes."}]
    path = write(tmp_path / "llava.json", [item("1", "A bowl."), late])
    skipped = []
    assert [r["id"] for r in read_source(open_source(path), skipped.append)] == ["1"]
    assert skipped == [f"{path} record 2 (id '2'): <image> appears after the first human turn; record skipped"]


def test_robopoint_answers_are_point_lists_in_the_unit_square(tmp_path):
    png(tmp_path / "images/region/1.png")
    records = [item("ok", "[(0.461, 0.527), (0.498, 0.521)]", image="region/1.png"),
               item("far", "[(0.461, 1.527)]", image="region/1.png"),
               item("pixels", "[(120, 45)]", image="region/1.png"),
               item("vqa", "The mug is (probably) empty.", image="region/1.png"),
               item("gone", "[(0.1, 0.2)]", image="region/2.png")]
    path = write(tmp_path / "robopoint_1432k.json", records)
    source = open_source(path)
    assert source.format == "robopoint" and source.root == tmp_path / "images"
    part = load_source(source, (skipped := []).append)
    assert [r["id"] for r in part.records] == ["ok", "vqa"] and part.skipped == 3
    assert skipped == [
        f"{path} record 2 (id 'far'): answer 1 has the point (0.461, 1.527) outside [0, 1]; record skipped",
        f"{path} record 3 (id 'pixels'): answer 1 has the point (120, 45) in pixels, not in [0, 1]; record skipped",
        f"{path} record 5 (id 'gone'): image region/2.png is missing; record skipped"]


def test_a_format_prefix_overrides_detection(tmp_path):
    png(tmp_path / "coco/1.jpg")
    path = write(tmp_path / "mixed.json", [item("vqa", "A bowl."), item("pt", "[(1.5, 0.5)]")])
    assert open_source(path).format == "robopoint"
    assert [r["id"] for r in read_source(open_source(f"llava:{path}"))] == ["vqa", "pt"]  # no point rule
    with pytest.raises(ConfigError, match="'robopint' in .* is not a knowledge format; formats: llava"):
        open_source(f"robopint:{path}")


def refspatial_item(id, answer, depth=("d/1.png", "d/2.png")):
    turns = [{"from": "human", "value": "<image>\n<image>\nWhich object is nearer?"},
             {"from": "gpt", "value": "(B) the cup"}]
    for k in range(14):  # 15 question-answer rounds in all
        turns += [{"from": "human", "value": f"Question {k}?"}, {"from": "gpt", "value": answer}]
    return {"id": id, "image": ["v/1.png", "v/2.png"], "depth": list(depth), "conversations": turns}


def test_refspatial_items_with_several_images_depth_and_reasoning(tmp_path):
    for name in ("image/v/1.png", "image/v/2.png", "depth/d/1.png", "depth/d/2.png"):
        png(tmp_path / name)
    chain = "Step 1: the plate is at (0.8, 0.4, 1.2). Step 2: left of it. A: [(0.35, 0.78)]"
    records = [refspatial_item("ok", chain), refspatial_item("far", "Step 1: x. A: [(0.35, 1.78)]"),
               refspatial_item("nodepth", chain, depth=("d/1.png", "d/9.png"))]
    path = write(tmp_path / "3D" / "reasoning_template_qa.json", records)
    for name in ("image", "depth"):
        (tmp_path / "3D" / name).symlink_to(tmp_path / name)
    source = open_source(path)
    assert source.format == "refspatial"
    assert (source.root, source.depth_root) == (path.parent / "image", path.parent / "depth")
    part = load_source(source, (skipped := []).append)
    assert [r["id"] for r in part.records] == ["ok"] and len(part.records[0]["conversations"]) == 30
    record = part.records[0]
    assert all((Path(record["root"]) / d).is_file() for d in record["depth"])  # depth paths resolve at the root
    assert skipped == [
        f"{path} record 2 (id 'far'): answer 2 has the point (0.35, 1.78) outside [0, 1]; record skipped",
        f"{path} record 3 (id 'nodepth'): depth d/9.png is missing; record skipped"]


def generated_folder(folder: Path, splits=("train", "val")) -> Path:
    png(folder / "images/s0.png")
    (folder / "images/m0.png").write_bytes(encode_png(np.full((4, 4), 255, np.uint8)))
    (folder / "meta.json").write_text(json.dumps({"families": {"point_object": {}}}))
    for split in splits:
        records = [make_record(f"{split}{i}", "images/s0.png", "Point to the bowl.", format_points([(0.5, 0.5)]),
                               family="point_object", answer_type="point", target="images/m0.png", scene="s0")
                   for i in range(3)]
        write(folder / f"{split}.jsonl", records, lines=True)
    return folder


def test_a_generated_folder_reads_the_split_asked_for(tmp_path):
    folder = generated_folder(tmp_path / "knowledge")
    source = open_source(folder, "val")
    assert (source.format, source.path, source.root, source.split) == ("pokevla", folder / "val.jsonl", folder, "val")
    assert [r["id"] for r in read_source(source)] == ["val0", "val1", "val2"]
    assert open_source(folder / "train.jsonl").path == folder / "train.jsonl"
    with open(folder / "train.jsonl", "a") as f:
        f.write("\n" + json.dumps(item("public", "[(0.5, 0.5)]", image="images/s0.png")) + "\n")
    part = load_source(open_source(folder), (skipped := []).append)
    assert part.skipped == 1 and "needs family, answer_type and target" in skipped[0]


@pytest.mark.parametrize("spec, split, message", [
    ("{tmp}/nowhere", "train", "knowledge source {tmp}/nowhere does not exist"),
    ("{tmp}/knowledge", "test", "split 'test' is not one of train, val, heldout"),
    ("{tmp}/knowledge", "heldout", "{tmp}/knowledge has no heldout split (splits there: train, val)"),
    ("{tmp}/knowledge/val.jsonl", "train", "is the val split, but the train split is read"),
    ("{tmp}", "train", "{tmp} has no meta.json: it is not a generated knowledge folder"),
    ("llava:{tmp}/knowledge", "train", "is a generated knowledge folder (format pokevla), not llava"),
    ("{tmp}/public.json", "val", "{tmp}/public.json is a public dataset file, which has no val split"),
    ("pokevla:{tmp}/public.json", "train", "a pokevla source is a generated folder"),
])
def test_bad_source_specs_are_one_line(tmp_path, spec, split, message):
    generated_folder(tmp_path / "knowledge")
    write(tmp_path / "public.json", [item("1", "A bowl.", image=None)])
    with pytest.raises(ConfigError) as e:
        open_source(spec.format(tmp=tmp_path), split)
    assert message.format(tmp=tmp_path) in str(e.value) and "\n" not in str(e.value)


def test_a_damaged_meta_json_is_a_dataset_error(tmp_path):
    folder = generated_folder(tmp_path / "knowledge")
    (folder / "meta.json").write_text("{broken")
    with pytest.raises(DatasetError, match="meta.json is not valid JSON"):
        open_source(folder)


def test_parse_mix(tmp_path):
    a, b = generated_folder(tmp_path / "a"), generated_folder(tmp_path / "b")
    mix = parse_mix(f"{a}=1, {b}=0.5")
    assert [(s.path, w) for s, w in mix] == [(a / "train.jsonl", 1.0), (b / "train.jsonl", 0.5)]
    assert [s.split for s, _ in parse_mix(f"{a}=2", "val")] == ["val"]


@pytest.mark.parametrize("spec, message", [
    ("", "has an empty item"),
    ("{a}=1,", "has an empty item"),
    ("{a}", "knowledge mix item '{a}' has no '=': write DIR=WEIGHT"),
    ("=1", "has no '='"),
    ("{a}=0", "the weight must be a number > 0"),
    ("{a}=-2", "the weight must be a number > 0"),
    ("{a}=nan", "the weight must be a number > 0"),
    ("{a}=inf", "the weight must be a number > 0"),
    ("{a}=heavy", "weight 'heavy' is not a number"),
    ("{a}=1,{a}=2", "names {a}/train.jsonl twice"),
    ("{a}/../missing=1", "does not exist"),
])
def test_bad_mixes_are_one_line_config_errors(tmp_path, spec, message):
    a = generated_folder(tmp_path / "a")
    with pytest.raises(ConfigError) as e:
        parse_mix(spec.format(a=a))
    assert message.format(a=a) in str(e.value) and "\n" not in str(e.value)


def test_the_sampler_is_deterministic_per_seed_and_epoch():
    sampler = MixSampler([10, 4], [1.0, 2.5], seed=3)
    first = sampler.epoch(0)
    assert first.shape == (len(sampler), 2) and first.dtype == np.int64
    assert np.array_equal(first, MixSampler([10, 4], [1.0, 2.5], seed=3).epoch(0))
    assert not np.array_equal(first, sampler.epoch(1))
    assert not np.array_equal(first, MixSampler([10, 4], [1.0, 2.5], seed=4).epoch(0))


def test_a_weight_is_how_often_each_record_is_drawn_per_epoch():
    sampler = MixSampler([10, 4], [1.0, 2.5], seed=0)
    assert sampler.counts == [10, 10] and len(sampler) == 20
    draws = Counter(map(tuple, sampler.epoch(0).tolist()))
    assert all(draws[(0, i)] == 1 for i in range(10))  # weight 1: every record once
    assert sorted(draws[(1, i)] for i in range(4)) == [2, 2, 3, 3]  # weight 2.5: twice, half of them thrice
    shares = Counter(int(s) for s in MixSampler([300, 100], [1, 3], seed=1).epoch(0)[:, 0])
    assert shares == {0: 300, 1: 300}


def test_the_draws_of_sources_are_interleaved():
    order = MixSampler([50, 50], [1, 1], seed=0).epoch(0)[:, 0]
    assert 0 < order[:50].sum() < 50  # not one source after the other


def test_a_mixture_draws_records_and_reports_skips(tmp_path):
    a = generated_folder(tmp_path / "a")
    png(tmp_path / "coco/1.jpg")
    public = write(tmp_path / "robopoint.json", [item("1", "[(0.5, 0.5)]"), item("2", "[(2.0, 0.5)]")])
    skipped = []
    mixture = Mixture(parse_mix(f"{a}=1,{public}=2"), seed=0, on_skip=skipped.append)
    assert len(mixture) == 5 and len(skipped) == 1
    assert mixture.skipped == {str(a / "train.jsonl"): 0, str(public): 1}
    ids = Counter(r["id"] for r in mixture.epoch(0))
    assert ids == {"train0": 1, "train1": 1, "train2": 1, "1": 2}
    assert [r["id"] for r in mixture.epoch(0)] == [r["id"] for r in mixture.epoch(0)]
    assert mixture.summary().splitlines()[1] == (f"{public} (robopoint): 1 records, 1 skipped, weight 2, "
                                                 f"40.0% of an epoch")


def test_a_source_without_valid_records_is_a_dataset_error(tmp_path):
    png(tmp_path / "coco/1.jpg")
    public = write(tmp_path / "robopoint.json", [item("1", "[(2.0, 0.5)]"), item("2", "[(0.5, 0.5)]", image="x.png")])
    with pytest.raises(DatasetError, match=r"robopoint.json has no valid record \(2 skipped\)"):
        Mixture(parse_mix(f"{public}=1"))


def test_the_format_of_a_large_file_is_read_from_its_first_records(tmp_path):
    png(tmp_path / "images/region/1.png")
    padding = "x" * 150_000  # 30 records of 150 kB: the file is larger than what detection reads
    records = [item(str(i), "[(0.5, 0.5)]", image="region/1.png", note=padding) for i in range(30)]
    source = open_source(write(tmp_path / "big.json", records))
    assert (source.format, source.root) == ("robopoint", tmp_path / "images")
    assert len(list(read_source(source))) == 30


def test_a_malformed_first_record_does_not_stop_detection(tmp_path):
    png(tmp_path / "images/coco/1.jpg")
    path = write(tmp_path / "llava.json", [item("bad", "A bowl.", image=5), item("1", "A bowl.")])
    source = open_source(path)
    assert source.root == tmp_path / "images"
    part = load_source(source, (skipped := []).append)
    assert [r["id"] for r in part.records] == ["1"]
    assert skipped == [f"{path} record 1 (id 'bad'): image is neither a path nor a list of paths; record skipped"]
