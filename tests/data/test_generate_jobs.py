"""How generation schedules its attempts (no simulator: the episodes are faked)."""

from pokevla.common.io import read_jsonl
from pokevla.data import generate
from pokevla.data.generate import GenerateConfig, generate_demos
from pokevla.sim import parallel


def test_spare_attempts_are_cancelled_once_every_task_has_its_episodes(tmp_path, monkeypatch):
    offered, run, closed = [], [], []

    def fake_map(fn, jobs, workers, cluster):
        offered.extend(jobs)
        try:
            for job in offered:
                run.append(job)
                yield {"task_id": job.task_id, "seed": job.seed, "success": True, "num_steps": 10}
        finally:
            closed.append(True)

    monkeypatch.setattr(parallel, "map_unordered", fake_map)
    monkeypatch.setattr(generate, "_write_episode", lambda writer, root, task, result: None)
    out = tmp_path / "demos"
    generate_demos(GenerateConfig(suite="libero_object", task_ids=(0, 1), episodes_per_task=4, out=str(out),
                                  resolution=32, workers=2), progress=False)
    # every task's needed attempts first, then the 25% spares for failures
    assert [job.task_id for job in offered] == [0] * 4 + [1] * 4 + [0, 1]
    assert len(run) == 8 and closed == [True]  # every attempt succeeded: no spare ever ran
    assert len(read_jsonl(out / "meta/pokevla_attempts.jsonl")) == 8
