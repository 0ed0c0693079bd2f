"""Episodes as Ray tasks on a local Ray the test starts: the same results as local processes, a
lost worker retried and counted once, clear errors for an unreachable cluster."""

import json
import os

import pytest

ray = pytest.importorskip("ray")

from pokevla.scale.ray_backend import connect, ray_map_unordered  # noqa: E402

pytestmark = pytest.mark.sim


@pytest.fixture(scope="module")
def local_ray():
    import sys

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import the tests
    connect(None, local_cpus=2)
    yield
    ray.shutdown()


def square(x):
    return x * x


def fail_on_three(x):
    if x == 3:
        raise ValueError("episode 3 broke")
    return x


def die_once(args):
    """Kills its worker process the first time it runs (a lost node), then succeeds."""
    x, marker = args
    if x == 1 and not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)
    return x


def test_every_job_once_in_completion_order(local_ray):
    assert sorted(ray_map_unordered(square, range(7), 0, None)) == [x * x for x in range(7)]


def test_an_episode_exception_keeps_its_type(local_ray):
    with pytest.raises(ValueError, match="episode 3 broke"):
        list(ray_map_unordered(fail_on_three, range(5), 2, None))


def test_a_worker_lost_mid_task_is_retried_and_counted_once(local_ray, tmp_path):
    marker = str(tmp_path / "died")
    results = list(ray_map_unordered(die_once, [(x, marker) for x in range(4)], 2, None))
    assert sorted(results) == [0, 1, 2, 3] and os.path.exists(marker)


def test_the_expert_evaluation_on_ray_equals_the_local_one(local_ray, tmp_path):
    from pokevla.cli import main

    common = ["--policy", "expert", "--suite", "libero_object", "--tasks", "0", "--trials", "2", "--videos", "0",
              "--max-steps", "30", "--workers", "2"]
    assert main(["eval", *common, "--out", str(tmp_path / "local")]) == 0
    assert main(["eval", *common, "--backend", "ray", "--out", str(tmp_path / "ray")]) == 0
    local, remote = (json.loads((tmp_path / d / "results.json").read_text())["episodes"] for d in ("local", "ray"))
    key = lambda r: (r["task_id"], r["trial"], r["success"], r["steps"], r["actions_sha1"])  # noqa: E731
    assert [key(r) for r in local] == [key(r) for r in remote]


def test_an_unreachable_cluster_is_one_clear_line(capsys, tmp_path):
    from pokevla.cli import main

    if ray.is_initialized():
        ray.shutdown()
    code = main(["eval", "--policy", "expert", "--suite", "libero_object", "--tasks", "0", "--trials", "1",
                 "--backend", "ray", "--ray-address", "127.0.0.1:1", "--out", str(tmp_path / "e")])
    err = capsys.readouterr().err
    assert code == 2 and "cannot start or reach a Ray cluster at 127.0.0.1:1" in err and err.count("\n") == 1


def test_ray_address_needs_the_ray_backend(capsys, tmp_path):
    from pokevla.cli import main

    assert main(["eval", "--policy", "expert", "--suite", "libero_object", "--ray-address", "auto",
                 "--out", str(tmp_path / "e")]) == 2
    assert "--ray-address needs --backend ray" in capsys.readouterr().err
