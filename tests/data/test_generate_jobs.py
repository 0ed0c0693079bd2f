"""How generation schedules its attempts (no simulator: the episodes are faked)."""

from pokevla.common.io import read_jsonl
from pokevla.data import generate
from pokevla.data.generate import GenerateConfig, generate_demos
from pokevla.sim import parallel


def test_rounds_offer_only_the_attempts_a_task_still_needs(tmp_path, monkeypatch):
    rounds, closed = [], []

    def eager_pool(fn, jobs, workers, cluster):  # like a process pool: every job it is given runs
        rounds.append([(job.task_id, job.seed) for job in jobs])
        try:
            for job in jobs:
                yield {"task_id": job.task_id, "seed": job.seed, "success": (job.task_id, job.seed) != (1, 2), "num_steps": 10}
        finally:
            closed.append(True)

    monkeypatch.setattr(parallel, "map_unordered", eager_pool)
    monkeypatch.setattr(generate, "_write_episode", lambda writer, root, task, result: None)
    out = tmp_path / "demos"
    summary = generate_demos(GenerateConfig(suite="libero_object", task_ids=(0, 1), episodes_per_task=4, out=str(out),
                                            resolution=32, workers=2), progress=False)
    # first round: exactly the episodes asked for; no attempt is queued for a task that may finish without it
    assert rounds[0] == [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (1, 1), (1, 2), (1, 3)]
    # task 1 failed once in 4: its one missing episode gets ceil(1 / 0.75) = 2 attempts, task 0 none
    assert rounds[1] == [(1, 4), (1, 5)] and len(rounds) == 2 and closed == [True, True]
    assert summary["failed_attempts"] == 1 and summary["short_tasks"] == {}
    # the second round stopped once task 1 was complete: its spare was cancelled, not recorded
    assert len(read_jsonl(out / "meta/pokevla_attempts.jsonl")) == 9
