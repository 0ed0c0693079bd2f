"""The benchmarks' scoring rules on hand-made answers, and the chance baselines on known targets."""

import numpy as np
import pytest

from pokevla.common.errors import DatasetError
from pokevla.data.lerobot import encode_png
from pokevla.pretrain.records import format_box, format_points
from pokevla.pretrain.scoring import (TRACE_WORST, box_iou, final_answer, format_table, parse_box, parse_choice,
                                      parse_count, parse_distance, parse_points, parse_trace, parse_yesno,
                                      point_score, resample_trace, score_records, yesno_correct)

WIDTH, HEIGHT = 20, 10


@pytest.fixture
def root(tmp_path):
    """A 20 x 10 mask whose left half (columns 0-9) is inside, one with 60 of 200 pixels inside
    (rows 0-2), and a 20 x 10 image."""
    left = np.zeros((HEIGHT, WIDTH), np.uint8)
    left[:, :10] = 255
    top = np.zeros((HEIGHT, WIDTH), np.uint8)
    top[:3] = 1
    (tmp_path / "left.png").write_bytes(encode_png(left))
    (tmp_path / "top.png").write_bytes(encode_png(top))
    (tmp_path / "image.png").write_bytes(encode_png(np.zeros((HEIGHT, WIDTH, 3), np.uint8)))
    return tmp_path


def record(family, answer_type, target, id="r", question=None):
    turns = [] if question is None else [{"from": "human", "value": f"<image>\n{question}"},
                                         {"from": "gpt", "value": "..."}]
    return {"id": id, "image": "image.png", "conversations": turns, "family": family, "answer_type": answer_type,
            "target": target}


def point_scores(root, answers, mask="left.png"):
    records = [record("point", "point", mask, id=str(i)) for i in range(len(answers))]
    return [score_records([r], [a], root)["families"]["point"]["score"] for r, a in zip(records, answers)]


POINT_ANSWERS = [
    ("[(0.25, 0.5)]", 1.0),                          # normalised, inside
    ("[(0.75, 0.5)]", 0.0),                          # normalised, outside the mask
    ("[(0.25, 0.5), (0.75, 0.5)]", 0.5),             # half of the points in
    ("(3, 4)", 1.0),                                 # integers are pixels
    ("(15, 4)", 0.0),
    ("(25, 4)", 0.0),                                # outside the image
    ("[(0.5, 1.2)]", 0.0),                           # normalised but outside the image
    ("[(0.25, 0.0, 0.75, 1.0)]", 0.5),               # a box: columns 5-14, half of them inside
    ("[(0, 0, 10, 10)]", 1.0),                       # a pixel box covering the mask exactly
    ("[(-5, 0, 5, 10)]", 1.0),                       # a box counts only its pixels in the image
    ("The bowl is at (0.2, 0.5) and (0.3, 0.5).", 1.0),
    ("Step 1: the plate is at (0.9, 0.5). A: [(0.2, 0.5)]", 1.0),  # a reasoning chain: its final answer
    ("I cannot see it.", 0.0),
    ("[(x, y)]", 0.0),
    ("[(0.5, 0.5, 0.5)]", 0.0),                      # a 3-tuple is neither a point nor a box
    ("", 0.0),
]


@pytest.mark.parametrize("answer, score", POINT_ANSWERS, ids=[a or "empty" for a, _ in POINT_ANSWERS])
def test_pointing_scores_the_fraction_of_predicted_pixels_in_the_mask(root, answer, score):
    assert point_scores(root, [answer]) == [pytest.approx(score)]


def test_parse_points_gives_pixels_x_then_y():
    assert parse_points("[(0.25, 0.5), (3, 4)]", WIDTH, HEIGHT).tolist() == [[5, 5], [3, 4]]
    assert parse_points("[(0.999, 0.999)]", WIDTH, HEIGHT).tolist() == [[19, 9]]
    assert parse_points("[(1.0, 1.0)]", WIDTH, HEIGHT).tolist() == [[20, 10]]  # just outside the image
    box = parse_points("(2, 3, 4, 5)", WIDTH, HEIGHT)
    assert sorted(map(tuple, box.tolist())) == [(2, 3), (2, 4), (3, 3), (3, 4)]
    assert parse_points("nothing", WIDTH, HEIGHT).shape == (0, 2)


def test_point_score_counts_points_outside_the_image_as_misses():
    mask = np.ones((2, 2), bool)
    assert point_score(np.array([[0, 0], [1, 1], [2, 0], [-1, 0]]), mask) == 0.5
    assert point_score(np.zeros((0, 2), np.int64), mask) == 0.0


def test_points_written_in_our_convention_score_as_intended(root):
    assert point_scores(root, [format_points([(0.1, 0.1), (0.45, 0.9)])]) == [1.0]
    assert point_scores(root, [format_box([0.0, 0.0, 0.5, 1.0])]) == [1.0]


def test_a_pointing_family_is_the_mean_over_questions_with_the_mask_area_as_chance(root):
    records = [record("place", "point", "left.png", "a"), record("place", "point", "top.png", "b")]
    result = score_records(records, ["[(0.1, 0.5)]", "no idea"], root)
    family = result["families"]["place"]
    assert family["score"] == pytest.approx(0.5) and family["n"] == 2
    assert family["chance"] == pytest.approx((0.5 + 0.3) / 2)  # area fractions of the two masks, exactly
    assert family["higher_is_better"] and family["answer_type"] == "point"
    assert result["unparseable"] == {"place": 1}


def test_box_iou():
    assert box_iou((0, 0, 1, 1), (0, 0, 1, 1)) == 1.0
    assert box_iou((0, 0, 0.5, 0.5), (0, 0, 1, 1)) == pytest.approx(0.25)
    assert box_iou((0, 0, 0.5, 1), (0.25, 0, 0.75, 1)) == pytest.approx(1 / 3)
    assert box_iou((0, 0, 0.1, 0.1), (0.5, 0.5, 1, 1)) == 0.0
    assert box_iou((0.5, 0.5, 0.1, 0.1), (0, 0, 1, 1)) == 0.0  # reversed corners: an empty box


def test_parse_box_takes_the_first_4_tuple_normalised():
    two = "(0.5, 0.5) then [(0.1, 0.2, 0.3, 0.4)], (0.0, 0.0, 1.0, 1.0)"
    assert parse_box(two, WIDTH, HEIGHT) == (0.1, 0.2, 0.3, 0.4)
    assert parse_box("[(2, 1, 10, 5)]", WIDTH, HEIGHT) == (0.1, 0.1, 0.5, 0.5)
    assert parse_box("[(0.1, 0.2)]", WIDTH, HEIGHT) is None


def test_boxes_score_accuracy_at_iou_one_half_with_the_whole_image_as_chance(root):
    target = [0.0, 0.0, 0.5, 0.5]
    answers = ["[(0.0, 0.0, 0.5, 0.5)]",   # IoU 1
               "[(0.0, 0.0, 0.5, 0.4)]",   # IoU 0.8
               "[(0.0, 0.0, 1.0, 1.0)]",   # IoU 0.25
               "[(0, 0, 10, 5)]",          # pixels of the 20 x 10 image: the target exactly
               "a box around the bowl"]    # unparseable
    records = [record("box", "box", target, str(i)) for i in range(len(answers))]
    records.append(record("box", "box", [0.0, 0.0, 1.0, 0.6], "big"))
    answers.append("[(0.0, 0.0, 1.0, 0.6)]")
    result = score_records(records, answers, root)
    assert result["families"]["box"]["score"] == pytest.approx(4 / 6)
    # a box over the whole image hits only the target covering >= half of it
    assert result["families"]["box"]["chance"] == pytest.approx(1 / 6)
    assert result["unparseable"]["box"] == 1


@pytest.mark.parametrize("answer, truth, correct", [
    ("Yes", "yes", True), ("yes, the bowl is left of the plate.", "yes", True), ("**No**", "no", True),
    ("No.", "yes", False), ("The answer is yes", "yes", False),  # the rule is a prefix, not a search
    ("", "no", False),
])
def test_yes_no_is_correct_iff_the_normalised_answer_starts_with_the_truth(answer, truth, correct):
    assert yesno_correct(answer, truth) is correct


def test_yes_no_parsing():
    assert parse_yesno(" YES!") == "yes" and parse_yesno("no way") == "no" and parse_yesno("maybe") is None


@pytest.mark.parametrize("text, letter", [
    ("(B) the red bowl", "B"), ("B", "B"), ("B. the plate", "B"), ("C) left", "C"),
    ("The answer is (c).", "C"), ("a bowl", None), ("I am not sure", None), ("A: (D)", "D"),
])
def test_choice_letters(text, letter):
    assert parse_choice(text) == letter


def test_choice_scores_the_letter_against_the_target_with_the_majority_as_chance(root):
    targets = ["(B) red bowl", "(B) plate", "(A) cup"]
    records = [record("next_step", "choice", t, str(i)) for i, t in enumerate(targets)]
    result = score_records(records, ["(B) the bowl", "A", "none of them"], root)
    assert result["families"]["next_step"]["score"] == pytest.approx(1 / 3)
    assert result["families"]["next_step"]["chance"] == pytest.approx(2 / 3)  # always "(B)"
    assert result["unparseable"]["next_step"] == 1


@pytest.mark.parametrize("text, count", [
    ("3", 3), ("three bowls", 3), ("There are 4.", 4), ("Ten", 10), ("zero", 0), ("many", None),
])
def test_counts(text, count):
    assert parse_count(text) == count


def test_counts_score_exact_matches(root):
    records = [record("count", "count", n, str(i)) for i, n in enumerate([3, 3, 2, 10])]
    result = score_records(records, ["3", "three", "There are 4.", "some"], root)
    assert result["families"]["count"]["score"] == pytest.approx(0.5)
    assert result["families"]["count"]["chance"] == pytest.approx(0.5)  # always 3
    assert result["unparseable"]["count"] == 1


@pytest.mark.parametrize("text, centimetres", [
    ("50", 50), ("50 cm", 50), ("about 0.45m away", 45), ("400 mm", 40), ("2 meters", 200),
    ("12 centimetres", 12), ("1.5 M", 150), ("42.5cm.", 42.5), ("far away", None),
])
def test_distances_are_read_in_centimetres_with_their_unit(text, centimetres):
    assert parse_distance(text) == (pytest.approx(centimetres) if centimetres is not None else None)


def test_distances_report_relative_error_and_accuracy_within_25_percent(root):
    records = [record("distance", "distance", d, str(i)) for i, d in enumerate([50, 100, 200, 50])]
    result = score_records(records, ["0.5 m", "120 cm", "I don't know", "70"], root)
    family = result["families"]["distance"]
    assert family["score"] == pytest.approx((0.0 + 0.2 + 1.0 + 0.4) / 4)
    assert family["within_25"] == pytest.approx(0.5) and not family["higher_is_better"]
    # always the median target, 75 cm: relative errors 0.5, 0.25, 0.625, 0.5
    assert family["chance"] == pytest.approx((0.5 + 0.25 + 0.625 + 0.5) / 4)
    assert family["within_25_chance"] == pytest.approx(0.25)
    assert result["unparseable"]["distance"] == 1


TRACE = [[0.1, 0.5], [0.5, 0.5]]  # left to right across the middle of the image
ALONG = np.linspace(0.0, 1.0, 32)  # where the 32 resampled points lie along a path, as a fraction of its length
TRACE_ANSWERS = [
    ("[(0.1, 0.5), (0.5, 0.5)]", 0.0),
    ("[(0.1, 0.5), (0.2, 0.5), (0.45, 0.5), (0.5, 0.5)]", 0.0),      # more points on the same path
    ("[(2, 5), (10, 5)]", 0.0),                                      # pixels of the 20 x 10 image
    ("[(0.1, 0.6), (0.5, 0.6)]", 0.1),                               # shifted down by 0.1
    ("[(0.5, 0.5), (0.1, 0.5)]", 0.4 * np.abs(2 * ALONG - 1).mean()),  # the path backwards
    ("[(0.3, 0.5)]", 0.4 * np.abs(ALONG - 0.5).mean()),             # one point: a trace standing still
    ("[(1.5, 0.5), (2.0, 0.5)]", 0.7),                               # outside the image: clipped to x = 1
    ("Step 1: the bowl is at (0.9, 0.9). A: [(0.1, 0.5), (0.5, 0.5)]", 0.0),
    ("It moves to the right.", TRACE_WORST),
    ("[(x, y)]", TRACE_WORST),
    ("[(0.1, 0.5, 0.5)]", TRACE_WORST),                              # a 3-tuple is no point
    ("", TRACE_WORST),
]


@pytest.mark.parametrize("answer, distance", TRACE_ANSWERS, ids=[a or "empty" for a, _ in TRACE_ANSWERS])
def test_traces_score_the_mean_distance_after_resampling_both_paths(root, answer, distance):
    result = score_records([record("trace", "trace", TRACE)], [answer], root)
    assert result["families"]["trace"]["score"] == pytest.approx(distance, abs=1e-9)
    assert result["unparseable"]["trace"] == (distance == TRACE_WORST)


def test_trace_parsing_and_resampling():
    np.testing.assert_allclose(parse_trace("[(0.25, 0.5), (10, 5)]", WIDTH, HEIGHT), [[0.25, 0.5], [0.5, 0.5]])
    assert parse_trace("none", WIDTH, HEIGHT).shape == (0, 2)
    # evenly spaced along the length, whatever the spacing of the given points; repeated points are fine
    path = resample_trace(np.array([[0.0, 0.0], [0.0, 0.0], [0.3, 0.0], [0.3, 0.3]]), 7)
    expected = [[0, 0], [0.1, 0], [0.2, 0], [0.3, 0], [0.3, 0.1], [0.3, 0.2], [0.3, 0.3]]
    np.testing.assert_allclose(path, expected, atol=1e-12)
    np.testing.assert_array_equal(resample_trace(np.array([[0.2, 0.4], [0.2, 0.4]]), 3), [[0.2, 0.4]] * 3)


def test_a_trace_family_is_lower_is_better_with_the_mean_reference_trace_as_chance(root):
    records = [record("trace", "trace", TRACE, "a"), record("trace", "trace", [[0.5, 0.1], [0.5, 0.5]], "b")]
    reference = [record("trace", "trace", [[0.3, 0.3], [0.3, 0.3]], "t")]  # always standing at (0.3, 0.3)
    result = score_records(records, ["[(0.1, 0.5), (0.5, 0.5)]", "no idea"], root, reference=reference)
    family = result["families"]["trace"]
    assert family["score"] == pytest.approx(TRACE_WORST / 2) and not family["higher_is_better"]
    # both targets are 0.4 long, and their middles lie 0.2 from (0.3, 0.3), square to the path
    chance = np.hypot(0.4 * (ALONG - 0.5), 0.2).mean()
    assert family["chance"] == pytest.approx(chance)
    assert result["unparseable"] == {"trace": 1}
    assert "| trace | mean distance (lower is better) | 2 |" in format_table(result)


def test_chance_baselines_come_from_the_reference_records_when_given(root):
    records = [record("left_of", "yesno", t, str(i)) for i, t in enumerate(["yes", "yes", "no"])]
    reference = [record("left_of", "yesno", t, f"t{i}") for i, t in enumerate(["no", "No", "yes"])]
    answers = ["Yes.", "no", "No, it is right of it."]
    assert score_records(records, answers, root)["families"]["left_of"]["chance"] == pytest.approx(2 / 3)
    result = score_records(records, answers, root, reference=reference)
    assert result["families"]["left_of"]["score"] == pytest.approx(2 / 3)
    assert result["families"]["left_of"]["chance"] == pytest.approx(1 / 3)  # always "no"


def test_a_fixed_answer_per_question_is_drawn_from_the_scored_set(root):
    # "the bowl" is asked twice, of the left and the top mask: their mean centre (0.375, 0.325) is in the
    # left mask only; "the cup" is asked once, of the top mask, and its own centre is inside it
    records = [record("point", "point", "left.png", "a", "Point to the bowl."),
               record("point", "point", "top.png", "b", "Point to the bowl."),
               record("point", "point", "top.png", "c", "Point to the cup.")]
    family = score_records(records, ["", "", ""], root)["families"]["point"]
    assert family["fixed"] == pytest.approx((1 + 0 + 1) / 3)
    assert family["chance"] == pytest.approx((0.5 + 0.3 + 0.3) / 3)
    # the majority answer over the family says "yes" to all; per question it knows the cup is never there
    questions = ["Is there a bowl?", "Is there a bowl?", "Is there a cup?"]
    records = [record("presence", "yesno", t, str(i), q) for i, (t, q) in enumerate(zip(["yes", "yes", "no"], questions))]
    family = score_records(records, ["yes"] * 3, root)["families"]["presence"]
    assert family["chance"] == pytest.approx(2 / 3) and family["fixed"] == pytest.approx(1.0)


def test_a_fixed_answer_comes_from_the_reference_when_given(root):
    # training put the bowl at the top and the cup on the left; a question it never asked gets the mean
    # over all its records
    reference = [record("point", "point", "top.png", "t1", "Point to the bowl."),
                 record("point", "point", "left.png", "t2", "Point to the cup."),
                 record("point", "point", "left.png", "t3", "Point to the cup.")]
    records = [record("point", "point", "left.png", "a", "Point to the bowl."),  # (0.5, 0.15): a miss
               record("point", "point", "top.png", "b", "Point to the bowl."),   # a hit
               record("point", "point", "left.png", "c", "Point to the cup."),   # (0.25, 0.5): a hit
               record("point", "point", "top.png", "d", "Point to the plate.")]  # (1/3, 0.383): a miss
    family = score_records(records, [""] * 4, root, reference=reference)["families"]["point"]
    assert family["fixed"] == pytest.approx(2 / 4)
    # from the scored records themselves the bowl is at (0.375, 0.325), in the left mask only, and the
    # plate at the top mask's centre
    assert score_records(records, [""] * 4, root)["families"]["point"]["fixed"] == pytest.approx(3 / 4)
    with pytest.raises(DatasetError, match="no record of family 'point' for its baselines"):
        score_records(records, [""] * 4, root, reference=[record("other", "yesno", "yes")])


def test_a_fixed_distance_is_the_median_per_question(root):
    records = [record("distance", "distance", t, str(i), q)
               for i, (t, q) in enumerate([(10, "A to B?"), (12, "A to B?"), (30, "A to B?"), (100, "C to D?")])]
    family = score_records(records, ["1 m"] * 4, root)["families"]["distance"]
    assert family["fixed"] == pytest.approx((0.2 + 0 + 0.6 + 0) / 4)  # medians 12 and 100
    assert family["within_25_fixed"] == pytest.approx(3 / 4)


def test_text_answers_match_exactly_after_normalisation(root):
    records = [record("colour", "text", t, str(i)) for i, t in enumerate(["red", "red", "blue"])]
    result = score_records(records, ["Red.", "a red one", "blue"], root)
    assert result["families"]["colour"]["score"] == pytest.approx(2 / 3)
    assert result["families"]["colour"]["chance"] == pytest.approx(2 / 3)


def test_final_answer_of_a_reasoning_chain():
    assert final_answer("Step 1: find the cup. Step 2: its left. A: [(0.1, 0.2)]") == " [(0.1, 0.2)]"
    assert final_answer("A: the red bowl") == "A: the red bowl"  # no chain before it
    assert final_answer("QA: yes") == "QA: yes"


def test_format_table_lists_every_family(root):
    records = [record("place", "point", "left.png", "a"), record("distance", "distance", 100, "b")]
    table = format_table(score_records(records, ["[(0.1, 0.1)]", "1 m"], root))
    assert table.splitlines() == [
        "| family | metric | n | score | chance | fixed answer per question |",
        "|---|---|---:|---:|---:|---:|",
        "| distance | rel. error (lower is better) | 1 | 0.000 | 0.000 | 0.000 |",
        "| distance | within 25% | 1 | 1.000 | 1.000 | 1.000 |",
        "| place | mask hit | 1 | 1.000 | 0.500 | 1.000 |",
    ]


def test_records_that_cannot_be_scored_are_one_clear_error(root):
    with pytest.raises(ValueError, match="2 records but 1 answers"):
        score_records([record("p", "point", "left.png")] * 2, ["x"], root)
    with pytest.raises(DatasetError, match="lacks family, answer_type or target"):
        score_records([{"id": "llava-1", "conversations": []}], ["x"], root)
    with pytest.raises(DatasetError, match="mixes answer types 'point' and 'box'"):
        score_records([record("p", "point", "left.png"), record("p", "box", [0, 0, 1, 1])], ["x", "y"], root)
    with pytest.raises(DatasetError, match="cannot read the mask .*gone.png"):
        score_records([record("p", "point", "gone.png")], ["(0.1, 0.1)"], root)
    with pytest.raises(DatasetError, match="no record of family 'c' for its baseline"):
        score_records([record("c", "count", 1)], ["1"], root, reference=[record("d", "count", 1)])
