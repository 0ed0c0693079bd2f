"""Evaluation through the published-protocol path: results files, videos, resume, checkpoints."""

import json

import pytest

from pokevla.common.errors import CheckpointError, PokeVLAError
from pokevla.common.io import read_jsonl
from pokevla.eval import evaluate as ev
from pokevla.eval.evaluate import EvalConfig, evaluate
from pokevla.eval.policy import PolicySpec

pytestmark = pytest.mark.sim


def test_expert_evaluation_writes_a_complete_results_file_and_resumes(tmp_path, monkeypatch):
    config = EvalConfig("libero_object", (0,), trials=2, out=str(tmp_path / "eval"), resolution=64, workers=1, videos_per_task=1)
    real_run_job = ev.run_job

    def second_episode_interrupted(job):
        if job.trial == 1:
            raise KeyboardInterrupt
        return real_run_job(job)

    monkeypatch.setattr(ev, "run_job", second_episode_interrupted)
    with pytest.raises(KeyboardInterrupt):
        evaluate(config, PolicySpec("expert"), progress=False)
    assert [r["trial"] for r in read_jsonl(tmp_path / "eval/episodes.jsonl")] == [0]
    monkeypatch.setattr(ev, "run_job", real_run_job)

    results = evaluate(config, PolicySpec("expert"), progress=False)
    records = read_jsonl(tmp_path / "eval/episodes.jsonl")
    assert [r["trial"] for r in records] == [0, 1]  # trial 0 was not run again
    on_disk = json.loads((tmp_path / "eval/results.json").read_text())
    assert on_disk["overall"] == results["overall"] and results["overall"]["episodes"] == 2
    task = results["per_task"][0]
    assert task["instruction"] == "pick up the alphabet soup and place it in the basket" and task["trials"] == 2
    assert results["overall"]["successes"] == 2  # the expert solves this task
    assert round(results["overall"]["interval95"][0], 2) == 0.34 and results["overall"]["interval95"][1] == 1.0
    assert results["max_steps"] == 280 and results["settings"]["seed"] == 0
    assert results["versions"]["mujoco"] == "3.3.7" and results["versions"]["robosuite"] == "1.4.0"
    assert "2 trials per task instead of 50" in results["protocol_deviations"]
    video = tmp_path / "eval" / records[0]["video"]
    assert video.exists() and video.stat().st_size > 1000 and "video" not in records[1]

    with pytest.raises(PokeVLAError, match="holds another evaluation"):
        evaluate(EvalConfig("libero_object", (1,), trials=2, out=str(tmp_path / "eval"), workers=1), PolicySpec("expert"), progress=False)


def test_a_checkpoint_runs_through_the_same_path(tmp_path):
    from pokevla.eval.checkpoints import resolve_checkpoint
    from pokevla.model.config import get_preset
    from pokevla.model.pokevla import PokeVLA
    from pokevla.model.synthetic import synthetic_stats

    tiny = get_preset("tiny")
    PokeVLA(tiny, synthetic_stats(tiny)).save_pretrained(tmp_path / "ckpt")
    (tmp_path / "ckpt/training.json").write_text(json.dumps({"data": {"suite": "libero_object"}}))
    with pytest.raises(CheckpointError, match="trained on libero_object, not libero_goal"):
        resolve_checkpoint(str(tmp_path / "ckpt"), "libero_goal")
    config = EvalConfig("libero_object", (2,), trials=1, out=str(tmp_path / "eval"), resolution=64, workers=1,
                        videos_per_task=0, max_steps=6)
    results = evaluate(config, PolicySpec("checkpoint", resolve_checkpoint(str(tmp_path / "ckpt"), "libero_object"), 4), progress=False)
    episode = results["episodes"][0]
    assert episode["steps"] == 6 and episode["success"] is False and episode["policy_seconds"] > 0
    assert results["policy"]["replan_steps"] == 4 and "max 6 steps instead of 280" in results["protocol_deviations"]


def test_eval_runs_a_robustness_manifest(tmp_path, capsys):
    from pokevla.cli import main

    manifest = tmp_path / "m.jsonl"
    assert main(["robustness", "build", "--suite", "libero_object", "--per-dimension", "1", "--dimensions", "language",
                 "--out", str(manifest)]) == 0
    assert main(["eval", "--policy", "expert", "--robustness", str(manifest), "--tasks", "0", "--out", str(tmp_path / "x")]) == 2
    assert "needs the tasks' --suite" in capsys.readouterr().err
    assert main(["eval", "--policy", "expert", "--robustness", str(manifest), "--suite", "libero_spatial",
                 "--out", str(tmp_path / "x")]) == 2
    assert "no runnable variant of libero_spatial" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    assert main(["eval", "--policy", "expert", "--robustness", str(manifest), "--out", str(tmp_path / "plus"),
                 "--workers", "1", "--resolution", "64"]) == 0
    results = json.loads((tmp_path / "plus/results.json").read_text())
    assert results["summary"]["per_dimension"]["language"]["episodes"] == 1
    assert results["summary"]["total"]["episodes"] == 1 and (tmp_path / "plus/robustness.png").exists()
    assert "\n| expert | " in results["table"] and results["settings"]["policy"].startswith("{'kind': 'expert'")  # row: the short label


def test_an_evaluation_through_the_server_acts_exactly_as_in_process(tmp_path, capsys):
    """Same checkpoint, same seed: the served policy executes the same actions, step for step."""
    import torch

    from pokevla.cli import main
    from pokevla.model.config import get_preset
    from pokevla.model.pokevla import PokeVLA
    from pokevla.model.synthetic import synthetic_stats
    from pokevla.serve.backend import TorchBackend
    from pokevla.serve.server import ServerConfig, ServerThread

    torch.set_num_threads(1)  # as in the simulator workers
    tiny = get_preset("tiny")
    torch.manual_seed(0)
    PokeVLA(tiny, synthetic_stats(tiny)).save_pretrained(tmp_path / "ckpt")
    (tmp_path / "ckpt/training.json").write_text(json.dumps({"data": {"suite": "libero_object",
                                                                      "render": {"resolution": 64, "fast_render": False}}}))
    # stock render, as the other simulator tests of this process: one process renders in one mode
    common = ["--suite", "libero_object", "--tasks", "2", "--trials", "2", "--resolution", "64",
              "--max-steps", "12", "--workers", "1", "--videos", "0", "--replan-steps", "4"]
    assert main(["eval", "--checkpoint", str(tmp_path / "ckpt"), *common, "--out", str(tmp_path / "local")]) == 0
    with ServerThread(TorchBackend(tmp_path / "ckpt"), ServerConfig(port=0)) as url:
        assert main(["eval", "--server", url, *common, "--resolution", "128", "--out", str(tmp_path / "bad")]) == 2
        assert "the server expects 64x64 images; evaluate with --resolution 64" in capsys.readouterr().err
        assert main(["eval", "--server", url, *common, "--out", str(tmp_path / "served")]) == 0
    local = json.loads((tmp_path / "local/results.json").read_text())
    served = json.loads((tmp_path / "served/results.json").read_text())
    assert served["policy"]["kind"] == "server" and len(served["policy"]["served_weights_sha256"]) == 64
    pairs = list(zip(local["episodes"], served["episodes"]))
    assert len(pairs) == 2 and all(a["actions_sha1"] == b["actions_sha1"] and a["steps"] == b["steps"] for a, b in pairs)
    assert local["episodes"][0]["actions_sha1"] != local["episodes"][1]["actions_sha1"]  # different starts, different acts
