import numpy as np
import pytest

from pokevla.serve.broker import ActionChunkBroker


class Planner:
    """Chunk k (k-th query) holds actions 10k + t in every dim; the gripper dim is +1 or -1 by query."""

    def __init__(self, grippers=None):
        self.calls, self.grippers = 0, grippers

    def __call__(self, observation):
        chunk = np.tile((10.0 * self.calls + np.arange(8))[:, None], (1, 7)).astype(np.float32)
        if self.grippers is not None:
            chunk[:, -1] = self.grippers[self.calls]
        self.calls += 1
        return chunk


def test_execute_steps_actions_per_chunk_then_a_new_query():
    planner = Planner()
    broker = ActionChunkBroker(planner, execute_steps=3)
    firsts = [broker.act({})[0] for _ in range(7)]
    assert firsts == [0, 1, 2, 10, 11, 12, 20] and planner.calls == 3
    broker.reset()
    assert broker.act({})[0] == 30  # a new episode drops the queued rest


def test_temporal_ensembling_weights_older_plans_first():
    planner = Planner(grippers=[1.0, -1.0, -1.0, -1.0])
    broker = ActionChunkBroker(planner, execute_steps=1, ensemble_decay=0.5)
    assert broker.act({})[0] == 0  # one plan
    second = broker.act({})  # plan 0 says 1, plan 1 says 10
    w = np.exp(-0.5 * np.arange(2))
    assert second[0] == pytest.approx((w[0] * 1 + w[1] * 10) / w.sum())
    assert second[-1] == 1.0  # the gripper: sign of the weighted mean (0.61 - 0.39 > 0)
    assert broker.act({})[-1] == 1.0  # 1 - 0.61 - 0.37 > 0: the oldest plan still wins
    assert broker.act({})[-1] == -1.0 and planner.calls == 4  # 1 - 0.61 - 0.37 - 0.22 < 0


def test_plans_that_ended_are_dropped():
    broker = ActionChunkBroker(Planner(), execute_steps=1, ensemble_decay=0.0)
    for _ in range(20):
        broker.act({})
    assert len(broker._plans) == 8  # the chunk length: older plans cover no future step


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="execute_steps"):
        ActionChunkBroker(Planner(), 0)
    with pytest.raises(ValueError, match="ensemble_decay"):
        ActionChunkBroker(Planner(), 1, ensemble_decay=-1)
