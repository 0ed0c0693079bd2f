"""Fast checks of the expert's pure functions: goal planning and grasp geometry (no simulator)."""

import numpy as np
import pytest

from pokevla.expert.grasps import HAND_HALF, MAX_WIDTH, body_grasps, clearance, finger_boxes, hand_clearance, rim_grasps
from pokevla.expert.motion import HAND_DOWN, hand_forward, wrap_half_turn, yaw_matrix
from pokevla.expert.planner import Step, plan
from pokevla.expert.scene import Box
from pokevla.expert.skills import way_out


def test_drawer_goal_is_opened_filled_then_closed():
    # libero_10 task 3: the BDDL lists Close before In; the drawer must be filled first
    goal = [["close", "white_cabinet_1_bottom_region"], ["in", "akita_black_bowl_1", "white_cabinet_1_bottom_region"]]
    steps = plan(goal, {"white_cabinet_1_bottom_region"})
    assert [s.kind for s in steps] == ["open", "move", "close"]
    assert steps[1] == Step("move", "akita_black_bowl_1", "white_cabinet_1_bottom_region", "in")


def test_stove_is_switched_on_before_pots_are_placed():
    goal = [["on", "moka_pot_1", "flat_stove_1_cook_region"], ["on", "moka_pot_2", "flat_stove_1_cook_region"], ["turnon", "flat_stove_1"]]
    assert [s.kind for s in plan(goal, set())] == ["turnon", "move", "move"]


def test_basket_goal_needs_no_opening():
    steps = plan([["in", "alphabet_soup_1", "basket_1_contain_region"]], {"wooden_cabinet_1_top_region"})
    assert steps == [Step("move", "alphabet_soup_1", "basket_1_contain_region", "in")]


def test_unknown_predicate_is_refused():
    with pytest.raises(ValueError, match="no skill"):
        plan([["stack", "a", "b"]], set())


def test_square_box_is_not_gripped_across_its_diagonal():
    axes = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    cands = body_grasps(np.zeros(3), axes, np.array([0.031, 0.031]), 0.04)  # a 6.2 cm square can
    for _, closing in cands:
        width = 2 * (np.abs(axes @ closing) @ np.array([0.031, 0.031]))
        assert width < MAX_WIDTH
    assert len(cands) == 2  # the two sides; both diagonals (8.8 cm) are wider than the hand opens


def test_elongated_box_closes_along_its_short_side():
    axes = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    cands = body_grasps(np.zeros(3), axes, np.array([0.04, 0.02]), 0.01)  # the cream cheese box
    assert all(np.allclose(np.abs(c), [0, 1, 0]) for _, c in cands)
    assert {round(p[0], 3) for p, _ in cands} == {0.0, -0.015, 0.015}  # centre and shifted along its length


def test_rim_grasps_keep_away_from_the_mug_handle():
    handle = np.array([0.0, 1.0, 0.0])
    cands = rim_grasps(np.zeros(3), 0.05, 0.0, handle)
    assert cands and all(abs(d @ handle) < np.cos(np.radians(50)) for _, d in cands)
    assert all(np.isclose(np.linalg.norm(p[:2]), 0.038) for p, _ in cands)  # on the wall, 1.2 cm inside the rim


def test_clearance_sees_a_neighbour_next_to_a_finger():
    point, closing = np.array([0.0, 0.0, 0.05]), np.array([1.0, 0.0, 0.0])
    right_finger = finger_boxes(point, closing)[1]
    neighbour = Box(np.array([right_finger.hi[0] + 0.01, -0.02, 0.0]), np.array([0.2, 0.02, 0.15]))
    assert clearance(point, closing, {"can": neighbour}) == pytest.approx(0.01)
    low = Box(neighbour.lo, np.array([0.2, 0.02, 0.02]))  # shorter than the fingertips' height: no obstacle
    assert clearance(point, closing, {"box": low}) == pytest.approx(0.1)


def test_hand_clearance_sees_a_cabinet_beyond_the_fingers():
    point, closing = np.array([0.0, 0.0, 0.05]), np.array([1.0, 0.0, 0.0])
    cabinet = Box(np.array([HAND_HALF[0] - 0.02, -0.2, 0.0]), np.array([0.4, 0.2, 0.3]))  # under the hand's end
    assert clearance(point, closing, {"cabinet": cabinet}) > 0  # the fingers alone clear it
    assert hand_clearance(point, closing, {"cabinet": cabinet}) == pytest.approx(-0.02)
    assert hand_clearance(point, np.array([0.0, 1.0, 0.0]), {"cabinet": cabinet}) > 0  # the hand turned across


def test_way_out_takes_the_shortest_shift_towards_the_robot():
    bowl = Box(np.array([-0.1, -0.05, 0.0]), np.array([0.0, 0.05, 0.05]))
    drawer = Box(np.array([-0.03, -0.3, 0.1]), np.array([0.3, 0.3, 0.2]))  # overlaps the bowl's +x side by 3 cm
    shift = way_out(bowl, [drawer], toward=np.array([-0.6, 0.0]), gap=0.005)
    assert shift[0] == pytest.approx(-0.04) and shift[1] == pytest.approx(0.0, abs=1e-9)
    assert not way_out(bowl, [], toward=np.zeros(2)).any()
    assert way_out(bowl, [Box(np.full(3, -1.0), np.ones(3))], toward=np.zeros(2)) is None


def test_box_gap_is_negative_when_footprints_overlap():
    a = Box(np.zeros(3), np.ones(3))
    assert a.xy_gap(Box(np.array([1.5, 0, 0]), np.array([2.0, 1, 1]))) == pytest.approx(0.5)
    assert a.xy_gap(Box(np.array([0.8, 0.5, 0]), np.array([2.0, 1, 1]))) == pytest.approx(-0.2)


def test_half_turn_wrap_and_hand_frames():
    assert wrap_half_turn(np.pi * 0.75) == pytest.approx(-np.pi / 4)
    # both quarter turns, on either side of rounding
    for tie in (-np.pi / 2, np.pi / 2, np.pi / 2 + 1e-12, -np.pi / 2 - 1e-12):
        assert wrap_half_turn(tie) == pytest.approx(np.pi / 2)
    assert np.allclose(yaw_matrix(np.pi / 2) @ [1, 0, 0], [0, 1, 0])
    for rot in (HAND_DOWN, hand_forward(np.array([0.0, -1.0, 0.0]), closing_up=True)):
        assert np.allclose(rot.T @ rot, np.eye(3)) and np.isclose(np.linalg.det(rot), 1.0)
    assert np.allclose(hand_forward(np.array([0.0, -2.0, 0.0]), closing_up=False)[:, 2], [0, -1, 0])
