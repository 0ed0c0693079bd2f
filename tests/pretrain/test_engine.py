"""The knowledge families on synthetic frames (masks, depth and cameras made here), the engine's
bookkeeping, and one real scene rendered end to end (marked sim)."""

import dataclasses
import json
import re
from collections import Counter

import numpy as np
import pytest

from pokevla.common.errors import DatasetError, SimulatorError
from pokevla.pretrain import engine, families
from pokevla.expert.planner import Step
from pokevla.pretrain.frames import (Frame, Goal, Part, Region, SceneObject, erode, free_space_mask,
                                     readable_name)
from pokevla.pretrain.records import record_problem
from pokevla.sim.perturb import BackgroundSpec, CameraSpec, layout

RES = 64
TABLE_DEPTH = 1.0  # the camera hangs 1 m above the table (z = 0), looking straight down
POINT = re.compile(r"\(([-\d.]+), ([-\d.]+)\)")


def camera() -> tuple[np.ndarray, np.ndarray]:
    """K (fx = fy = 64 px, 1 m of table spans the image) and camera -> world: image x along world +x,
    image y along world -y."""
    k = np.array([[64.0, 0, RES / 2], [0, 64.0, RES / 2], [0, 0, 1]])
    pose = np.eye(4)
    pose[:3, :3] = [[1, 0, 0], [0, -1, 0], [0, 0, -1]]
    pose[:3, 3] = [0, 0, TABLE_DEPTH]
    return k, pose


def box(name, label, center_xy, size=0.1, height=0.08, movable=True, grasp=None):
    lo = np.array([center_xy[0] - size / 2, center_xy[1] - size / 2, 0.0])
    hi = np.array([center_xy[0] + size / 2, center_xy[1] + size / 2, height])
    return name, label, lo, hi, movable, grasp


def make_frame(specs, **extra) -> Frame:
    """Renders axis-aligned boxes standing on the table as the straight-down camera sees their tops
    (instance map and depth), and wraps them in a Frame."""
    k, pose = camera()
    v, u = np.mgrid[0:RES, 0:RES] + 0.5
    x, y = (u - k[0, 2]) / k[0, 0], -(v - k[1, 2]) / k[1, 1]  # world xy per metre of depth
    instances = np.zeros((RES, RES), np.int32)
    depth = np.full((RES, RES), TABLE_DEPTH, np.float32)
    objects = []
    for i, (name, label, lo, hi, movable, grasp) in enumerate(specs, start=1):
        d = TABLE_DEPTH - hi[2]
        top = (x * d >= lo[0]) & (x * d <= hi[0]) & (y * d >= lo[1]) & (y * d <= hi[1]) & (d < depth)
        instances[top], depth[top] = i, d
        objects.append(SceneObject(name, label, lo, hi, i, movable, grasp=None if grasp is None else np.array(grasp)))
    fields = dict(id="suite/task00/scene00000/f0", scene="suite/task00/scene00000",
                  image="images/suite/task00/scene00000/f0_primary.png",
                  wrist_image="images/suite/task00/scene00000/f0_wrist.png", instances=instances, depth=depth,
                  intrinsics=k, cam_to_world=pose, objects=objects, instruction="put the soup in the basket",
                  success=False, absent_labels=("ketchup", "milk"))
    fields.update(extra)
    return Frame(**fields)


def scene_frame(**extra) -> Frame:
    return make_frame([box("alphabet_soup_1", "alphabet soup", (-0.25, 0.2)),
                       box("basket_1", "basket", (0.25, 0.2), size=0.16, height=0.1),
                       box("akita_black_bowl_1", "black bowl", (-0.3, -0.25)),
                       box("akita_black_bowl_2", "black bowl", (0.05, -0.25)),
                       box("butter_1", "butter", (0.3, -0.2), height=0.03)], **extra)


def run(family, frame, seeds=range(20)):
    return [r for s in seeds for r in families.FAMILIES[family].make(frame, np.random.default_rng(s))]


def points(record) -> np.ndarray:
    return np.array([[float(a), float(b)] for a, b in POINT.findall(record["conversations"][1]["value"])])


def pixel(frame, xy):
    h, w = frame.size
    return int(xy[1] * h), int(xy[0] * w)  # normalised (x, y) -> (row, column), as the scorers read it


def label_in(record, frame):
    question = record["conversations"][0]["value"]
    return [o for o in frame.objects if f"the {o.label}" in question]



# ------------------------------------------------------------------------------------- families
def test_pointed_pixels_lie_on_the_named_object_and_the_target_mask():
    frame = scene_frame()
    records = run("point_object", frame)
    assert records
    for r in records:
        (obj,) = label_in(r, frame)
        assert obj.label != "black bowl"  # two of them: never named alone
        pts = points(r)
        assert 1 <= len(pts) <= 3
        for p in pts:
            assert frame.instances[pixel(frame, p)] == obj.instance
        np.testing.assert_array_equal(frame.masks[r["target"]] > 0, frame.mask(obj))
        assert record_problem(r) is None


def test_boxes_enclose_exactly_the_visible_mask():
    frame = scene_frame()
    for r in run("box_object", frame, range(3)):
        (obj,) = label_in(r, frame)
        rows, cols = np.nonzero(frame.mask(obj))
        assert r["target"] == [cols.min() / RES, rows.min() / RES, (cols.max() + 1) / RES, (rows.max() + 1) / RES]
        assert record_problem(r) is None


def test_left_of_answers_agree_with_the_projected_positions_in_both_polarities():
    frame = scene_frame()
    records = run("relation", frame)
    answers = {r["conversations"][1]["value"] for r in records}
    assert answers == {"yes", "no"}
    for r in records:
        q = r["conversations"][0]["value"]
        a, relation_word, b = re.search(r"In the image, is the (.+?) (to the left of|to the right of|in front of|behind) "
                                        r"the (.+?)\?", q).group(1, 2, 3)
        oa, ob = (next(o for o in frame.objects if o.label == n) for n in (a, b))
        ua, ub = (frame.project(o.center)[0, 0] for o in (oa, ob))
        za, zb = (frame.to_camera(o.center)[0, 2] for o in (oa, ob))
        truth = {"to the left of": ua < ub, "to the right of": ua > ub, "in front of": za < zb, "behind": za > zb}
        assert r["conversations"][1]["value"] == ("yes" if truth[relation_word] else "no")


def test_near_ties_are_not_asked():
    # same column and same height: neither left/right nor front/behind is clear
    frame = make_frame([box("milk_1", "milk", (0.0, 0.2)), box("butter_1", "butter", (0.01, -0.2))])
    assert run("relation", frame) == []
    assert run("closer", frame) == []  # 0.1 mm apart in distance from the camera


def test_order_and_anchor_references_point_at_the_right_instance():
    frame = scene_frame()
    records = run("refer_order", frame, range(40))
    assert records
    bowls = [o for o in frame.objects if o.label == "black bowl"]
    for r in records:
        q = r["conversations"][0]["value"]
        u = {o.name: frame.project(o.center)[0, 0] for o in bowls}
        dist = {o.name: frame.camera_distance(o.center)[0] for o in bowls}
        want = {"leftmost": min(u, key=u.get), "rightmost": max(u, key=u.get),
                "nearest": min(dist, key=dist.get), "farthest": max(dist, key=dist.get)}
        word = next(w for w in want if w in q)
        target = frame.by_name(want[word])
        assert all(frame.instances[pixel(frame, p)] == target.instance for p in points(r))
    for r in run("refer_anchor", frame):
        (anchor,) = label_in(r, frame)
        closest = min((o for o in frame.objects if o.name != anchor.name),
                      key=lambda o: np.linalg.norm(o.center - anchor.center))
        assert all(frame.instances[pixel(frame, p)] == closest.instance for p in points(r))


def test_free_space_points_match_the_depth_map_and_avoid_objects():
    frame = scene_frame()
    soup = frame.by_name("alphabet_soup_1")
    mask = free_space_mask(frame, soup)
    assert mask.sum() > 20
    # every free pixel sees the table plane (depth within 2.5 cm of it) and no object
    assert np.all(np.abs(frame.depth[mask] - TABLE_DEPTH) < 0.025) and np.all(frame.instances[mask] == 0)
    table = frame.points[mask]
    gaps = [np.linalg.norm(np.maximum(np.maximum(o.lo[:2] - table[:, :2], table[:, :2] - o.hi[:2]), 0), axis=1)
            for o in frame.objects]
    assert np.all((gaps[0] >= 0.03) & (gaps[0] <= 0.15))  # beside the soup
    assert all(np.all(g >= 0.04) for g in gaps[1:])  # clear of the others
    # a flat thing lying on the table in the ring (1 cm tall) removes its pixels: occupied
    lid = box("plate_1", "plate", (-0.25, 0.05), size=0.08, height=0.01)
    covered = make_frame([box("alphabet_soup_1", "alphabet soup", (-0.25, 0.2)), lid])
    assert not (free_space_mask(covered, covered.objects[0]) & covered.mask(covered.objects[1])).any()
    for r in run("free_space", frame):
        assert all(mask_of(frame, r)[pixel(frame, p)] for p in points(r))


def mask_of(frame, record):
    return frame.masks[record["target"]] > 0


def test_goal_place_uses_the_receptacle_or_the_region_on_its_parent():
    on_object = scene_frame(goals=[Goal("alphabet_soup_1", "on", "basket_1")])
    (r,) = run("goal_place", on_object, [0])
    np.testing.assert_array_equal(mask_of(on_object, r), on_object.mask(on_object.by_name("basket_1")))
    basket = on_object.by_name("basket_1")
    # a region covering the basket's left half, on its top face
    region = Region(center=np.array([0.21, 0.2, 0.1]), rotation=np.eye(3), half=np.array([0.04, 0.08, 0.005]),
                    instance=basket.instance)
    in_region = scene_frame(goals=[Goal("alphabet_soup_1", "in", "basket_1_contain_region", region)])
    (r,) = run("goal_place", in_region, [0])
    mask = mask_of(in_region, r)
    assert mask.sum() > 0 and not (mask & ~in_region.mask(basket)).any()
    assert np.all(in_region.points[mask][:, 0] <= 0.25 + 1e-6)  # only its left half
    assert all(mask[pixel(in_region, p)] for p in points(r))
    # inside a tall region box, the same pixels on a steep face (depth rising 2 cm per pixel, 55 degrees)
    # are no place to put a thing: only up-facing surfaces count
    tall = Region(center=np.array([0.25, 0.2, 0.3]), rotation=np.eye(3), half=np.array([0.08, 0.08, 0.3]),
                  instance=basket.instance)
    goals = [Goal("alphabet_soup_1", "in", "basket_1_contain_region", tall)]
    assert len(run("goal_place", scene_frame(goals=goals), [0])) == 1
    steep = in_region.depth.copy()
    rows, cols = np.nonzero(in_region.mask(basket))
    steep[rows, cols] -= 0.02 * (cols - cols.min())
    wall = scene_frame(depth=steep, goals=goals)
    assert not wall.upward[erode(wall.mask(basket))].any()
    assert run("goal_place", wall, [0]) == []


def test_grasp_point_is_on_the_object_near_the_expert_grasp():
    frame = make_frame([box("milk_1", "milk", (0.1, 0.1), grasp=(0.1, 0.1, 0.05)),
                        box("butter_1", "butter", (-0.2, -0.1))])
    (r,) = run("grasp_point", frame, [0])
    (p,) = points(r)
    assert frame.instances[pixel(frame, p)] == 1
    uv = frame.project(np.array([0.1, 0.1, 0.05]))[0] / RES
    assert np.linalg.norm(p - uv) < 2 / RES


def test_counts_presence_and_inventory():
    frame = scene_frame()
    for r in run("presence", frame):
        label = re.search(r"Is there a (.+) in the image\?", r["conversations"][0]["value"]).group(1)
        assert r["target"] == ("no" if label in frame.absent_labels else "yes")
    assert {r["target"] for r in run("presence", frame)} == {"yes", "no"}
    counts = {re.search(r"How many (.+) are there", r["conversations"][0]["value"]).group(1): r["target"]
              for r in run("count", frame)}
    assert counts["black bowls"] == 2 and counts.get("milks", 0) == 0 and counts["alphabet soups"] == 1
    (r,) = run("inventory", frame, [0])
    assert r["target"] == "alphabet soup, basket, 2 black bowls, butter"
    # a sliver of an object in view makes the list uncertain: no inventory
    sliver = make_frame([box("milk_1", "milk", (0.0, 0.0)), box("butter_1", "butter", (0.3, 0.3), size=0.03)])
    assert 0 < sliver.pixels(sliver.objects[1]) < sliver.min_pixels
    assert run("inventory", sliver) == []


def test_closer_distance_success_and_next_object():
    frame = make_frame([box("milk_1", "milk", (0.0, 0.2), height=0.3), box("butter_1", "butter", (0.0, -0.2), height=0.02)],
                       next_object="butter_1")
    for r in run("closer", frame):
        options = dict(re.findall(r"\(([AB])\) the (\w+)", r["conversations"][0]["value"]))
        assert options[r["target"]] == "milk"  # its centre is 14 cm higher, nearer the camera
    (d,) = {r["target"] for r in run("distance", frame)}
    assert d == round(100 * np.linalg.norm([0.0, 0.4, 0.14]))
    assert {r["target"] for r in run("success", make_frame([], success=True))} == {"yes"}
    negatives = run("success", frame, range(40))
    assert 0 < len(negatives) < 40 and {r["target"] for r in negatives} == {"no"}
    assert all(r["image"] == [frame.image, frame.wrist_image] and record_problem(r) is None for r in negatives)
    for r in run("next_object", frame):
        options = dict(re.findall(r"\(([AB])\) the (\w+)", r["conversations"][0]["value"]))
        assert options[r["target"]] == "butter"


def test_a_gripper_trace_is_the_future_positions_projected_with_points_out_of_view_dropped():
    # 1 m above the table the camera sees |x|, |y| < 0.5 m; at height z it sees |x| < 0.5 (1 - z)
    future = np.array([[-0.3, 0.1, 0.2], [-0.1, 0.0, 0.2], [0.1, -0.1, 0.1], [0.2, -0.2, 0.05], [0.5, 0.0, 0.3]])
    frame = scene_frame(gripper_future=future)
    (r,) = run("gripper_trace", frame, [0])
    expected = [[0.5 + x / (1 - z), 0.5 - y / (1 - z)] for x, y, z in future[:4]]  # the last is out of view
    np.testing.assert_allclose(points(r), expected, atol=5e-4)
    assert r["target"] == points(r).tolist() and r["answer_type"] == "trace" and record_problem(r) is None
    assert frame.instruction in r["conversations"][0]["value"]
    assert run("gripper_trace", scene_frame()) == []  # the rollout ends too soon
    assert run("gripper_trace", scene_frame(gripper_future=future[3:])) == []  # one point in view is no trace
    states = np.arange(50 * 8, dtype=np.float32).reshape(50, 8)
    np.testing.assert_array_equal(engine.gripper_future(states, 3), states[3:44:8, :3])
    assert engine.gripper_future(states, 10) is None  # step 50 is past the rollout's end


DRAWER = Step("open", "cabinet_1_top_region")
STOVE = Step("turnon", "flat_stove_1")
SOUP = Step("move", "alphabet_soup_1", "basket_1_contain_region", "in")
BUTTER = Step("move", "butter_1", "basket_1_contain_region", "in")
CLOSE = Step("close", "cabinet_1_top_region")
WORDS = {DRAWER: "open the top drawer of the cabinet", CLOSE: "close the top drawer of the cabinet",
         STOVE: "turn on the stove", Step("turnoff", "flat_stove_1"): "turn off the stove",
         SOUP: "put the alphabet soup in the basket", BUTTER: "put the butter in the basket",
         Step("move", "butter_1", "alphabet_soup_1", "on"): "put the butter on the alphabet soup",
         Step("move", "alphabet_soup_1", "butter_1", "on"): "put the alphabet soup on the butter"}


def subtask_frame(pending, holding=None, **extra):
    frame = scene_frame(plan=(DRAWER, STOVE, SOUP, BUTTER, CLOSE), pending=frozenset(pending), step_words=WORDS,
                        **extra)
    frame.objects = [dataclasses.replace(o, held=o.name == holding) for o in frame.objects]
    return frame


def options(record) -> dict[str, str]:
    question = record["conversations"][0]["value"]
    return dict(re.findall(r"\(([A-D])\) (.+?)(?= \([A-D]\)|$)", question))


def test_subtask_options_hold_the_plan_step_and_only_wrong_steps():
    # the start: the first step; the stove is switched on in the same phase, so it is never a wrong option
    records = run("subtask", subtask_frame({DRAWER, STOVE, SOUP, BUTTER, CLOSE}, start=True))
    assert len(records) == 20
    for r in records:
        shown = options(r)
        assert "first" in r["conversations"][0]["value"] and shown[r["target"]] == WORDS[DRAWER]
        assert r["conversations"][1]["value"] == f"({r['target']}) {WORDS[DRAWER]}" and record_problem(r) is None
        assert WORDS[STOVE] not in shown.values() and len(shown) == 3
    assert {v for r in records for v in options(r).values()} >= {WORDS[CLOSE], WORDS[SOUP]}  # later or other steps
    assert {r["target"] for r in records} == {"A", "B", "C"}
    # holding the soup while moving it: that move now, the butter's next (a close drawer comes later)
    records = run("subtask", subtask_frame({SOUP, BUTTER, CLOSE}, holding="alphabet_soup_1"))
    now = [r for r in records if "is under way" in r["conversations"][0]["value"]]
    after = [r for r in records if "after" in r["conversations"][0]["value"]]
    assert len(now) == len(after) == 20
    assert all(options(r)[r["target"]] == WORDS[SOUP] for r in now)
    assert all(options(r)[r["target"]] == WORDS[BUTTER] for r in after)
    # holding something that is not the object of the first pending step, or nothing mid-rollout: no question
    assert run("subtask", subtask_frame({SOUP, BUTTER, CLOSE}, holding="butter_1")) == []
    assert run("subtask", subtask_frame({SOUP, BUTTER, CLOSE})) == []
    # the step under way has no words (an ambiguous name): only the one after it is asked
    unnamed = subtask_frame({SOUP, CLOSE}, holding="alphabet_soup_1")
    unnamed.step_words = {s: w for s, w in WORDS.items() if s != SOUP}
    (r,) = run("subtask", unnamed, [0])
    assert "after" in r["conversations"][0]["value"] and options(r)[r["target"]] == WORDS[CLOSE]


def test_handle_points_lie_in_the_handle_mask():
    frame = scene_frame()
    basket = frame.mask(frame.by_name("basket_1"))
    handle = basket & (np.arange(RES)[:, None] < np.nonzero(basket)[0].min() + 3)  # its top three rows
    sliver = np.zeros_like(handle)
    sliver[0, :4] = True
    frame.parts = [Part("the handle of the basket", handle), Part("the knob of the stove", sliver)]
    records = run("handle_point", frame)
    assert len(records) == 20 and handle.sum() >= frame.min_pixels > sliver.sum()  # too few pixels: never asked
    for r in records:
        assert "the handle of the basket" in r["conversations"][0]["value"]
        np.testing.assert_array_equal(mask_of(frame, r), handle)
        assert all(handle[pixel(frame, p)] for p in points(r)) and record_problem(r) is None


def test_readable_names():
    assert readable_name("akita_black_bowl_2") == "black bowl"
    assert readable_name("alphabet_soup_1") == "alphabet soup"
    assert readable_name("new_salad_dressing") == "salad dressing"


# --------------------------------------------------------------------------------------- engine
def test_splits_are_by_scene_and_deterministic():
    ids = [engine.scene_id("libero_object", t, i) for t in range(10) for i in range(200)]
    splits = [engine.split_of(s, heldout=False) for s in ids]
    assert splits == [engine.split_of(s, heldout=False) for s in ids]
    assert 0.03 < splits.count("val") / len(ids) < 0.07 and set(splits) == {"train", "val"}
    assert engine.split_of(ids[0], heldout=True) == "heldout"
    assert engine.frame_steps(100) == [0, 20, 40, 60, 80]
    assert engine.frame_steps(2) == [0, 1]


def fake_result(scene_index, n, split="train"):
    scene = engine.scene_id("libero_object", 0, scene_index)
    image = f"images/{scene}/f0_primary.png"
    records = [{"id": f"{scene}/f0/presence/{i}", "image": image, "family": "presence", "scene": scene,
                "conversations": [{"from": "human", "value": "<image>\nq"}, {"from": "gpt", "value": "yes"}]}
               for i in range(n)]
    return {"scene": scene, "suite": "libero_object", "task_id": 0, "index": scene_index, "split": split,
            "expert_success": True, "seconds": 1.0, "records": records, "files": {image: b"png"}}


def test_an_interrupted_scene_leaves_no_records_behind(tmp_path):
    done = [engine.write_scene(tmp_path, fake_result(0, 3)), engine.write_scene(tmp_path, fake_result(1, 2))]
    # the third scene's records were appended, with a torn tail, but its journal line never was
    with open(tmp_path / "train.jsonl", "a") as f:
        f.write("\n".join(json.dumps(r) for r in fake_result(2, 4)["records"]) + '\n{"id": "torn')
    engine._drop_unjournaled(tmp_path, done)
    ids = [json.loads(line)["id"] for line in (tmp_path / "train.jsonl").read_text().splitlines()]
    assert len(ids) == 5 and len(set(ids)) == 5 and all("scene00002" not in i for i in ids)
    assert (tmp_path / "images/libero_object/task00/scene00001/f0_primary.png").read_bytes() == b"png"
    with pytest.raises(DatasetError, match="damaged"):
        engine._drop_unjournaled(tmp_path, done + [engine.write_scene(tmp_path / "other", fake_result(3, 9))])


def test_rounds_spread_scenes_over_tasks_and_stop_at_the_target():
    config = engine.KnowledgeConfig(suites=("libero_object",), heldout_suites=("libero_goal",), out="unused", samples=1000)
    groups = engine._groups(config)
    assert groups["train"][1] == 900 and groups["heldout"][1] == 100
    jobs = engine._next_jobs(config, groups, [], ("milk",))
    assert sum(j.split == "heldout" for j in jobs) == 1 and len(jobs) == 10  # first guess: 100 records a scene
    assert len({(j.suite, j.task_id) for j in jobs}) == 10  # 9 training tasks + 1 held-out one
    done = [{"scene": engine.scene_id("libero_object", 0, i), "suite": "libero_object", "task_id": 0, "index": i,
             "split": "train", "records": 300, "families": {}} for i in range(3)]
    jobs = engine._next_jobs(config, groups, done, ())
    assert [j.split for j in jobs] == ["heldout"]
    assert not engine._reached(config, groups, done)
    # a large target: the first round is one scene per task, so no task waits behind another's overshoot
    big = dataclasses.replace(config, samples=100_000)
    jobs = engine._next_jobs(big, engine._groups(big), [], ())
    assert len(jobs) == 20 and len({(j.suite, j.task_id) for j in jobs}) == 20


def test_restyled_scenes_are_a_fixed_share_of_training_scenes_and_never_held_out_ones():
    def job(index, restyle, split="train"):
        return engine.SceneJob("libero_90", 3, index, split, RES, False, 0, restyle, restyle)

    drawn = [engine.scene_background(job(i, 0.3)) for i in range(400)]
    assert drawn == [engine.scene_background(job(i, 0.3)) for i in range(400)]  # a resumed run draws the same
    assert 0.22 < sum(b is not None for b in drawn) / 400 < 0.38
    assert all(isinstance(b, BackgroundSpec) for b in drawn if b is not None)
    assert len({b.table_texture for b in drawn if b is not None}) > 10
    assert all(engine.scene_background(job(i, 0.0)) is None for i in range(50))
    assert all(engine.scene_background(job(i, 1.0, "heldout")) is None for i in range(50))
    assert all(engine.scene_background(job(i, 1.0, "val")) is not None for i in range(50))
    views = [engine.scene_camera(job(i, 0.3)) for i in range(400)]
    assert views == [engine.scene_camera(job(i, 0.3)) for i in range(400)]
    assert 0.22 < sum(v is not None for v in views) / 400 < 0.38
    assert [v is None for v in views] != [b is None for b in drawn]  # drawn independently of the background
    assert all(isinstance(v, CameraSpec) and v.level <= 3 for v in views if v is not None)
    assert all(engine.scene_camera(job(i, 1.0, "heldout")) is None for i in range(50))


def test_scattered_layouts_are_drawn_per_block_of_scenes_and_never_for_held_out_ones():
    def job(index, scatter, split="train"):
        return engine.SceneJob("libero_90", 3, index, split, RES, False, 0, scatter=scatter)

    layouts = [engine.scene_layout(job(i, 0.5)) for i in range(0, 800, engine.SCATTER_BLOCK)]
    assert layouts == [engine.scene_layout(job(i, 0.5)) for i in range(0, 800, engine.SCATTER_BLOCK)]
    assert 0.38 < sum(spec is not None for spec in layouts) / len(layouts) < 0.62
    for i in range(engine.SCATTER_BLOCK):  # a block shares its layout (and its envs)
        assert engine.scene_layout(job(i, 1.0)) == engine.scene_layout(job(0, 1.0))
    drawn = [spec for spec in layouts if spec is not None]
    assert all(spec.kind == "scatter" and 1 <= spec.level <= 3 for spec in drawn)
    changes = [engine.layout_changes(job(0, 1.0), spec) for spec in drawn]
    assert all(len(c["distractors"]) == spec.level and not c["dropped"] for c, spec in zip(changes, drawn))
    assert len({tuple(c["distractors"]) for c in changes}) > 10
    assert all(engine.scene_layout(job(i, 1.0, "heldout")) is None for i in range(0, 80, 8))
    assert all(engine.scene_layout(job(i, 0.0)) is None for i in range(0, 80, 8))


def test_recomposed_layouts_lose_unused_things_and_gain_objects_of_any_category():
    def job(index, recompose):
        return engine.SceneJob("libero_90", 3, index, "train", RES, False, 0, scatter=1.0, recompose=recompose)

    blocks = range(0, 1600, engine.SCATTER_BLOCK)
    plain = [engine.scene_layout(job(i, 0.0)) for i in blocks]
    mixed = [engine.scene_layout(job(i, 0.5)) for i in blocks]
    assert plain == [engine.scene_layout(job(i, 0.0)) for i in blocks]
    recomposed = [(spec, engine.layout_changes(job(0, 0.5), spec)) for spec, old in zip(mixed, plain) if spec != old]
    assert 0.38 < len(recomposed) / len(blocks) < 0.62  # the others are the plain scattered layouts
    droppable = set(layout.droppable(engine._task_bddl(job(0, 0.5))))
    assert droppable and all(set(c["dropped"]) <= droppable for _, c in recomposed)
    assert 0.3 < np.mean([len(c["dropped"]) / len(droppable) for _, c in recomposed]) < 0.7
    added = {category for _, c in recomposed for category in c["distractors"]}
    assert all(1 <= spec.level <= 4 for spec, _ in recomposed) and added - set(layout.DISTRACTOR_CATEGORIES)


def test_bad_flags_and_changed_settings_are_refused_in_one_line(tmp_path, bad_input):
    base = ["generate", "knowledge", "--out", tmp_path / "k"]
    bad_input([*base, "--suites", "libero_object", "--samples", "0"], "--samples must be at least 1", [tmp_path / "k"])
    bad_input([*base, "--suites", "libero_nine"], "unknown suite 'libero_nine'", [tmp_path / "k"])
    bad_input([*base, "--suites", "libero_object", "--heldout-suites", "libero_object"], "both a training and a held-out")
    bad_input([*base, "--suites", "libero_object", "--resolution", "8"], "--resolution 8 is out of range")
    bad_input([*base, "--suites", "libero_object", "--workers", "0"], "--workers must be at least 1")
    bad_input([*base, "--suites", ","], "has an empty name")
    bad_input([*base, "--suites", "libero_object", "--restyle", "1.5"], "--restyle 1.5 is not a share of scenes")
    bad_input([*base, "--suites", "libero_object", "--move-camera", "-1"], "--move-camera -1.0 is not a share")
    bad_input([*base, "--suites", "libero_object", "--scatter", "2"], "--scatter 2.0 is not a share")
    bad_input([*base, "--suites", "libero_object", "--recompose", "0.5"], "--recompose changes scattered scenes only")
    bad_input([*base, "--suites", "libero_object", "--scatter", "1", "--recompose", "-1"], "--recompose -1.0 is not a share")
    out = tmp_path / "done"
    out.mkdir()
    settings = engine.KnowledgeConfig(suites=("libero_object",), out=str(out), resolution=128).settings()
    (out / "meta.json").write_text(json.dumps({"generator": settings}))
    bad_input(["generate", "knowledge", "--out", out, "--suites", "libero_object", "--resolution", "64"],
              "other settings (resolution differ)", [out])
    before_restyle = {k: v for k, v in settings.items() if k not in ("restyle", "move_camera", "scatter")}  # an older dataset
    (out / "meta.json").write_text(json.dumps({"generator": before_restyle}))
    engine._check_same_settings(out, settings)
    bad_input(["generate", "knowledge", "--out", out, "--suites", "libero_object", "--resolution", "128",
               "--restyle", "0.5"], "other settings (restyle differ)", [out])
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x.txt").write_text("mine")
    bad_input(["generate", "knowledge", "--out", tmp_path / "busy", "--suites", "libero_object"], "is not empty")


# ----------------------------------------------------------------------------------- real scene
@pytest.mark.sim
def test_a_real_scene_is_labelled_on_its_segmentation_and_resumes_without_duplicates(tmp_path, monkeypatch):
    frames = []
    real_frame = engine.frame_from_env

    def keep(*args, **kwargs):
        frames.append(real_frame(*args, **kwargs))
        return frames[-1]

    monkeypatch.setattr(engine, "frame_from_env", keep)  # one worker: the scene runs in this process
    out = tmp_path / "k"
    config = engine.KnowledgeConfig(suites=("libero_object",), out=str(out), samples=50, resolution=RES)  # stock render, as the other simulator tests of this process
    first = engine.generate_knowledge(config, progress=False)
    assert first["scenes"] == 1 and first["samples"] >= 50
    records = [json.loads(line) for line in (out / f"{engine.split_of(frames[0].scene, False)}.jsonl").read_text().splitlines()]
    assert len(records) == first["samples"] and all(record_problem(r, out) is None for r in records)
    by_id = {f.id: f for f in frames}

    # the camera convention: each visible object's projected 3D centre falls on (or beside) its own mask
    for obj in (o for o in frames[0].objects if frames[0].visible(o)):
        rows, cols = np.nonzero(frames[0].mask(obj))
        uv = frames[0].project(obj.center)[0]
        assert np.hypot(cols + 0.5 - uv[0], rows + 0.5 - uv[1]).min() < 2.0, obj.name
    pointed = [r for r in records if r["family"] == "point_object"]
    assert pointed
    for r in pointed:
        frame = by_id[r["id"].rsplit("/", 2)[0]]
        (obj,) = label_in(r, frame)
        assert all(frame.instances[pixel(frame, p)] == obj.instance for p in points(r))
    for r in (r for r in records if r["family"] == "free_space"):
        frame = by_id[r["id"].rsplit("/", 2)[0]]
        (obj,) = label_in(r, frame)
        for p in points(r):  # the table seen there, at the height the object stands on
            assert frame.instances[pixel(frame, p)] == 0 and abs(frame.points[pixel(frame, p)][2] - obj.lo[2]) < 0.025
    success = {r["id"].rsplit("/", 2)[0]: r["target"] for r in records if r["family"] == "success"}
    assert all(t == ("yes" if by_id[f].success else "no") for f, t in success.items())
    journal = [json.loads(line) for line in (out / "journal.jsonl").read_text().splitlines()]
    assert frames[-1].success == journal[0]["expert_success"]  # the last frame is the rollout's end
    meta = json.loads((out / "meta.json").read_text())
    assert sum(sum(c.values()) for c in meta["counts"].values()) == first["samples"]
    assert set(meta["families"]) == set(families.FAMILIES) and meta["versions"]["mujoco"]

    again = engine.generate_knowledge(config, progress=False)  # the same command: nothing to do
    assert again["new_samples"] == 0 and again["scenes"] == 1
    more = engine.generate_knowledge(dataclasses.replace(config, samples=first["samples"] + 1),
                                     progress=False)
    assert more["scenes"] == 2
    ids = [json.loads(line)["id"] for split in ("train", "val") if (out / f"{split}.jsonl").exists()
           for line in (out / f"{split}.jsonl").read_text().splitlines()]
    assert len(ids) == len(set(ids)) == more["samples"]


@pytest.mark.sim
def test_a_scene_the_expert_cannot_solve_is_labelled_where_it_stopped(tmp_path):
    # LIBERO-90 task 35, "open the microwave": the expert has no door skill, so the scene gets one frame
    job = engine.SceneJob("libero_90", 35, 0, "train", RES, False, 0, absent_labels=("ketchup",))
    result = engine.run_scene(job)
    assert not result["expert_success"] and "door" in result["expert_error"]
    assert {r["id"].rsplit("/", 2)[0] for r in result["records"]} == {f"{job.scene}/f0"}
    assert any(r["family"] == "point_object" for r in result["records"])
    entry = engine.write_scene(tmp_path, result)
    assert entry["expert_error"] == result["expert_error"] and entry["records"] == len(result["records"])


@pytest.mark.sim
def test_a_restyled_scene_has_the_labels_and_the_geometry_of_its_own_look(tmp_path, monkeypatch):
    seen = []  # (camera env, the rendered state, its observation)
    real_frame = engine.frame_from_env

    def keep(env, obs, *args, **kwargs):
        seen.append((env, env.get_sim_state(), obs))
        return real_frame(env, obs, *args, **kwargs)

    monkeypatch.setattr(engine, "frame_from_env", keep)
    job = engine.SceneJob("libero_90", 35, 0, "train", RES, False, 0, restyle=1.0)
    result = engine.run_scene(job)
    assert result["background"] == engine.scene_background(job).to_dict()
    assert engine.write_scene(tmp_path, result)["background"] == result["background"]
    env, state, styled = seen[0]
    own = env.set_sim_state(state)  # after the scene the env shows its own table and wall again
    for key in ("observation.instances.primary", "observation.depth.primary", "observation.geoms.primary"):
        np.testing.assert_array_equal(own[key], styled[key])
    diff = np.abs(own["observation.images.primary"].astype(int) - styled["observation.images.primary"].astype(int))
    assert diff.mean() > 5


@pytest.mark.sim
def test_a_scene_from_a_moved_camera_is_labelled_in_that_view(tmp_path, monkeypatch):
    seen = []  # (camera env, the rendered state, its frame)
    real_frame = engine.frame_from_env

    def keep(env, obs, *args, **kwargs):
        seen.append((env, env.get_sim_state(), real_frame(env, obs, *args, **kwargs), obs))
        return seen[-1][2]

    monkeypatch.setattr(engine, "frame_from_env", keep)
    job = engine.SceneJob("libero_90", 35, 0, "train", 64, False, 0, move_camera=1.0)
    result = engine.run_scene(job)
    assert result["camera"] == engine.scene_camera(job).to_dict() and result["background"] is None
    assert engine.write_scene(tmp_path, result)["camera"] == result["camera"]
    env, state, frame, moved_obs = seen[0]
    visible = [o for o in frame.objects if frame.visible(o)]
    assert visible
    for obj in visible:  # the labels use the moved camera: each 3D centre projects onto its own mask
        rows, cols = np.nonzero(frame.mask(obj))
        uv = frame.project(obj.center)[0]
        assert np.hypot(cols + 0.5 - uv[0], rows + 0.5 - uv[1]).min() < 2.0, obj.name
    own = env.set_sim_state(state)  # after the scene the camera is back where the suite has it
    assert (own["observation.instances.primary"] != moved_obs["observation.instances.primary"]).mean() > 0.05
    np.testing.assert_array_equal(own["observation.images.wrist"], moved_obs["observation.images.wrist"])


@pytest.mark.sim
def test_a_scattered_scene_is_built_from_its_layout_and_labels_its_distractors(tmp_path, monkeypatch):
    seen = []  # (camera env, frame)
    real_frame = engine.frame_from_env

    def keep(env, obs, *args, **kwargs):
        seen.append((env, real_frame(env, obs, *args, **kwargs)))
        return seen[-1][1]

    monkeypatch.setattr(engine, "frame_from_env", keep)
    own = engine.run_scene(engine.SceneJob("libero_90", 35, 0, "train", 64, False, 0))
    job = engine.SceneJob("libero_90", 35, 0, "train", 64, False, 0, scatter=1.0)
    result = engine.run_scene(job)
    spec = engine.scene_layout(job)
    assert own["layout"] is None and result["layout"] == engine.layout_changes(job, spec)
    assert engine.write_scene(tmp_path, result)["layout"] == result["layout"]
    (_, own_frame), (env, frame) = seen[0], seen[-1]
    labels = {o.label for o in frame.objects}
    assert {readable_name(c) for c in result["layout"]["distractors"]} <= labels
    pointed = [label_in(r, frame) for r in result["records"] if r["family"] == "point_object"]
    assert {o.label for objs in pointed for o in objs} & {readable_name(c) for c in result["layout"]["distractors"]}
    moved = {o.name: np.linalg.norm(o.center[:2] - p.center[:2]) for p in own_frame.objects for o in frame.objects
             if o.name == p.name}
    assert max(moved.values()) > 0.1  # the same reset seed places the task's things elsewhere
    with pytest.raises(SimulatorError, match="has no init states"):
        env.reset(trial=0)


@pytest.mark.sim
def test_a_recomposed_scene_lacks_what_it_dropped_and_labels_what_it_gained(monkeypatch):
    seen = []
    real_frame = engine.frame_from_env

    def keep(*args, **kwargs):
        seen.append(real_frame(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(engine, "frame_from_env", keep)
    job = engine.SceneJob("libero_90", 20, 8, "train", 64, False, 0, scatter=1.0, recompose=1.0)
    result = engine.run_scene(job)
    dropped, gained = result["layout"]["dropped"], result["layout"]["distractors"]
    assert dropped and gained and result["expert_success"]
    for frame in seen:
        assert not {o.name for o in frame.objects} & set(dropped)
        assert {readable_name(c) for c in gained} <= {o.label for o in frame.objects}
        assert not {readable_name(c) for c in gained} & set(frame.absent_labels)


@pytest.mark.sim
def test_a_drawer_scene_gets_traces_steps_and_handles_from_the_simulator(monkeypatch):
    # libero_goal task 3, "open the top drawer and put the bowl inside": a cabinet of three drawers, a stove
    seen = []  # (frame, the gripper position of its state, the gripper's pixels)
    real_frame = engine.frame_from_env

    def keep(env, obs, *args, **kwargs):
        frame = real_frame(env, obs, *args, **kwargs)
        gripper = frame.instances == env.instance_names.index("PandaGripper0") + 1
        seen.append((frame, obs["observation.state"][:3], gripper))
        return frame

    monkeypatch.setattr(engine, "frame_from_env", keep)
    result = engine.run_scene(engine.SceneJob("libero_goal", 3, 0, "train", 128, False, 0))
    assert result["expert_success"]
    by_id = {f.id: f for f, _, _ in seen}
    records = {}
    for r in result["records"]:
        records.setdefault(r["family"], []).append((by_id[r["id"].rsplit("/", 2)[0]], r))

    # a trace starts where the rendered state's gripper is, on (or beside) its pixels in the image
    traced = [(f, state, gripper) for f, state, gripper in seen if f.gripper_future is not None]
    assert len(traced) >= 3 and len(records["gripper_trace"]) >= 3
    for frame, state, gripper in traced:
        assert np.abs(frame.gripper_future[0] - state).max() < 0.002
        uv = frame.project(frame.gripper_future[:1])[0]
        rows, cols = np.nonzero(gripper)
        assert np.hypot(cols + 0.5 - uv[0], rows + 0.5 - uv[1]).min() < 0.05 * frame.size[1]
    for frame, r in records["gripper_trace"]:
        now = frame.normalised(frame.project(frame.gripper_future[:1]))[0]
        np.testing.assert_allclose(points(r)[0], now, atol=5e-4)

    # the first step of the plan: open the drawer the bowl goes into
    ((start, first),) = records["subtask"]
    assert start.start and options(first)[first["target"]] == "open the top drawer of the wooden cabinet"
    bowl_in = Step("move", "akita_black_bowl_1", "wooden_cabinet_1_top_region", "in")
    assert start.step_words[bowl_in] == "put the black bowl in the top drawer of the wooden cabinet"

    # handles lie on the cabinet, the knob on the stove, the drawers' handles one above the other
    handles = {p.words: p.mask for p in start.parts}
    drawers = [f"the handle of the {level} drawer of the wooden cabinet" for level in ("top", "middle", "bottom")]
    assert set(handles) == {*drawers, "the knob of the stove"}
    for words, mask in handles.items():
        fixture = start.by_name("flat_stove_1" if "stove" in words else "wooden_cabinet_1")
        assert mask.sum() >= start.min_pixels and not (mask & ~start.mask(fixture)).any()
    rows = [np.nonzero(handles[words])[0].mean() for words in drawers]
    assert rows == sorted(rows)
    # the expert opened the top drawer: its handle moved towards the image's left, the bottom one stayed
    end = {p.words: p.mask for p in seen[-1][0].parts}
    assert np.nonzero(end[drawers[0]])[1].mean() < np.nonzero(handles[drawers[0]])[1].mean() - 0.1 * 128
    assert abs(np.nonzero(end[drawers[2]])[1].mean() - np.nonzero(handles[drawers[2]])[1].mean()) < 2
    for frame, r in records["handle_point"]:
        (part,) = [p for p in frame.parts if p.words in r["conversations"][0]["value"]]
        np.testing.assert_array_equal(mask_of(frame, r), part.mask)
        assert all(part.mask[pixel(frame, p)] for p in points(r)) and record_problem(r) is None


def test_a_place_on_a_region_of_the_table_has_no_words():
    class TableRegion:  # LIBERO gives a region site of the table itself no parent object
        def is_site(self, name):
            return True

        def parent_of_site(self, name):
            return None

    assert engine._place(TableRegion(), "main_table_stove_front_region", "on", Counter(), {}) is None
