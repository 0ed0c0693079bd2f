"""Normalisation from LeRobot-format statistics: modes, the kept gripper, loud errors."""

from __future__ import annotations

import json

import pytest
import torch

from pokevla.common.config import from_dict
from pokevla.common.errors import CheckpointError
from pokevla.model.config import NormConfig
from pokevla.model.normalize import ACTION, STATE, Normalizer, normalisation_warning


def _stats(dim: int, lo: float = -2.0, hi: float = 4.0) -> dict:
    return {"mean": [1.0] * dim, "std": [2.0] * dim, "min": [lo - 1] * dim, "max": [hi + 1] * dim,
            "q01": [lo] * dim, "q99": [hi] * dim, "count": [100]}


STATS = {STATE: _stats(8), ACTION: _stats(7)}


def test_quantiles_map_to_unit_range_clip_and_keep_the_gripper():
    n = Normalizer.for_model(STATS, NormConfig(), state_dim=8, action_dim=7)
    a = torch.tensor([[-2.0, 4.0, 1.0, 10.0, -10.0, 0.0, -1.0]])
    y = n.normalize(ACTION, a)
    torch.testing.assert_close(y, torch.tensor([[-1.0, 1.0, 0.0, 1.0, -1.0, -1 / 3, -1.0]]))
    inside = torch.tensor([[-2.0, 4.0, 1.0, 3.0, -1.5, 0.0, 1.0]])
    torch.testing.assert_close(n.unnormalize(ACTION, n.normalize(ACTION, inside)), inside)


def test_gripper_can_be_normalised_too():
    n = Normalizer.for_model(STATS, NormConfig(normalize_gripper=True), state_dim=8, action_dim=7)
    assert float(n.normalize(ACTION, torch.full((1, 7), 1.0))[0, -1]) == 0.0


@pytest.mark.parametrize("mode,x,y", [("mean_std", 5.0, 2.0), ("min_max", 5.0, 1.0), ("identity", 5.0, 5.0)])
def test_other_modes(mode, x, y):
    n = Normalizer.for_model(STATS, NormConfig(state=mode), state_dim=8, action_dim=7)
    out = n.normalize(STATE, torch.full((2, 8), x))
    torch.testing.assert_close(out, torch.full((2, 8), y))
    torch.testing.assert_close(n.unnormalize(STATE, out), torch.full((2, 8), x))


def test_constant_dimension_does_not_divide_by_zero():
    stats = {STATE: _stats(8, 0.5, 0.5), ACTION: _stats(7)}
    n = Normalizer.for_model(stats, NormConfig(), state_dim=8, action_dim=7)
    assert torch.isfinite(n.normalize(STATE, torch.zeros(1, 8))).all()


@pytest.mark.parametrize("stats,message", [
    ({ACTION: _stats(7)}, "lack 'observation.state'"),
    ({STATE: _stats(7), ACTION: _stats(7)}, r"observation.state.q01 has 7 values; the model expects 8"),
    ({STATE: {"q01": [0.0] * 8}, ACTION: _stats(7)}, "lack 'q99' needed by mode quantiles"),
    ({STATE: dict(_stats(8), q99=[float("nan")] * 8), ACTION: _stats(7)}, "contain NaN"),
])
def test_bad_statistics_are_loud(stats, message):
    with pytest.raises(CheckpointError, match=message):
        Normalizer.for_model(stats, NormConfig(), state_dim=8, action_dim=7)


def test_json_round_trip_is_equal():
    n = Normalizer.for_model(STATS, NormConfig(), state_dim=8, action_dim=7)
    again = Normalizer.for_model(json.loads(json.dumps(n.to_json())), NormConfig(), state_dim=8, action_dim=7)
    assert again == n
    assert again != Normalizer.for_model({STATE: _stats(8), ACTION: _stats(7, hi=5.0)}, NormConfig(), 8, 7)


@pytest.mark.parametrize("mode", ["quantiles", "min_max", "mean_std"])
def test_a_degenerate_dimension_cannot_collapse(mode):
    stats = {STATE: _stats(8), ACTION: _stats(7)}
    for name in ("q01", "q99", "min", "max", "mean"):
        stats[STATE][name][3] = 3.1  # an axis-angle component that never moved in the demonstrations
    stats[STATE]["std"][3] = 0.0
    n = Normalizer.for_model(stats, NormConfig(state=mode, state_min_range=0.05), state_dim=8, action_dim=7)
    assert n.widened_dims(STATE) == [3] and n.widened_dims(ACTION) == []
    state = torch.zeros(2, 8)
    state[:, 3] = torch.tensor([3.1, 3.12])  # evaluation starts 0.02 rad away
    y = n.normalize(STATE, state)
    assert y[0, 3] == pytest.approx(0.0) and 0.3 < float(y[1, 3]) < 0.5  # distinguishable, not clipped to +-1
    torch.testing.assert_close(n.unnormalize(STATE, y), state)
    torch.testing.assert_close(y[:, :3], Normalizer.for_model(STATS, NormConfig(state=mode), 8, 7).normalize(STATE, state)[:, :3])
    warning = normalisation_warning(n)
    assert "observation.state dims [3]" in warning and "--norm.state-min-range" in warning
    assert normalisation_warning(Normalizer.for_model(STATS, NormConfig(), 8, 7)) is None


def test_the_kept_gripper_is_never_reported_as_widened():
    stats = {STATE: _stats(8), ACTION: _stats(7, lo=0.0, hi=0.0)}  # every action dim constant
    n = Normalizer.for_model(stats, NormConfig(), state_dim=8, action_dim=7)
    assert n.widened_dims(ACTION) == list(range(6))
    assert float(n.normalize(ACTION, torch.full((1, 7), -1.0))[0, -1]) == -1.0


def test_a_norm_config_saved_before_the_floors_existed_still_loads():
    old = from_dict(NormConfig, {"state": "min_max", "action": "quantiles", "normalize_gripper": False})
    assert old.state == "min_max" and old.state_min_range == NormConfig().state_min_range
    assert old.action_min_range == NormConfig().action_min_range
