"""Checkpoint selection by closed-loop success from held-out scenes: the rule, its record, its refusals."""

import json

import pytest

from pokevla.eval import select as sel
from pokevla.eval.evaluate import EvalConfig, wilson_interval


def generated(make_dataset, root, seed):
    """A dataset as `pokevla generate demos --seed SEED` records it: four episodes, tasks 0 and 1."""
    generator = {"suite": "libero_object", "seed": seed, "init_joint_noise": 0.02, "resolution": 16, "fast_render": True}
    make_dataset(root, [5, 5, 5, 5], ["pick up the soup"] * 4, extra={"pokevla": {"generator": generator}})
    return str(root)


def training_run(root, dataset, steps):
    """A run directory as `pokevla train` leaves it, with the files a complete checkpoint needs."""
    (root / "checkpoints").mkdir(parents=True)
    (root / "run.json").write_text(json.dumps({"data": {"dataset": dataset, "suite": "libero_object"}}))
    for step in steps:
        folder = root / "checkpoints" / f"step_{step:07d}"
        folder.mkdir()
        for name in ("config.json", "model.safetensors"):  # no trainer state: selection needs only the model
            (folder / name).write_text("{}")
    (root / "checkpoints/last").write_text(f"step_{steps[-1]:07d}\n")
    return root


@pytest.fixture
def scored(monkeypatch):
    """Replaces the simulator run of each candidate by fixed successes per (step, task)."""
    table = {}

    def fake_evaluate(config, policy, progress=True):
        step = int(policy.checkpoint.rsplit("_", 1)[1])
        per_task = [{"task_id": t, "successes": table[step][t], "trials": config.trials} for t in config.task_ids]
        wins = sum(t["successes"] for t in per_task)
        return {"overall": {"successes": wins, "episodes": config.trials * len(config.task_ids)}, "per_task": per_task}

    monkeypatch.setattr(sel, "evaluate", fake_evaluate)
    return table


def test_the_most_successful_checkpoint_is_selected_and_recorded(tmp_path, make_dataset, scored):
    train = generated(make_dataset, tmp_path / "train_data", seed=0)
    held = generated(make_dataset, tmp_path / "held_out", seed=1)
    run = training_run(tmp_path / "run", train, [1000, 2000, 3000])
    scored.update({1000: {0: 0, 1: 1}, 2000: {0: 2, 1: 2}, 3000: {0: 2, 1: 1}})
    config = EvalConfig("libero_object", (0, 1), trials=2, out=str(tmp_path / "sel"), starts=held)
    selection = sel.select(run, config, progress=False)
    assert selection["selected"]["step"] == 2000 and selection["selected"]["checkpoint"].endswith("step_0002000")
    on_disk = json.loads((tmp_path / "sel/selection.json").read_text())
    assert [c["successes"] for c in on_disk["candidates"]] == [1, 4, 3]
    assert on_disk["candidates"][1]["per_task"] == {"0": 2, "1": 2} and on_disk["starts"] == held
    assert on_disk["rule"] == sel.RULE and "torch" in on_disk["versions"]
    assert "<- selected" in sel.format_selection(selection).splitlines()[2]


def test_a_tie_goes_to_the_later_checkpoint_and_steps_narrow_the_candidates(tmp_path, make_dataset, scored):
    train = generated(make_dataset, tmp_path / "train_data", seed=0)
    held = generated(make_dataset, tmp_path / "held_out", seed=1)
    run = training_run(tmp_path / "run", train, [1000, 2000, 3000])
    scored.update({1000: {0: 2}, 2000: {0: 1}, 3000: {0: 2}})
    config = EvalConfig("libero_object", (0,), trials=2, out=str(tmp_path / "sel"), starts=held)
    assert sel.select(run, config, progress=False)["selected"]["step"] == 3000
    narrowed = sel.select(run, EvalConfig("libero_object", (0,), trials=2, out=str(tmp_path / "sel2"), starts=held),
                          steps=[1000, 2000], progress=False)
    assert [c["step"] for c in narrowed["candidates"]] == [1000, 2000] and narrowed["selected"]["step"] == 1000


def test_wilson_interval_matches_the_published_formula():
    low, high = wilson_interval(112, 150)
    assert round(100 * low) == 67 and round(100 * high) == 81
    assert wilson_interval(0, 50)[0] == 0.0 and round(100 * wilson_interval(0, 50)[1]) == 7
    assert wilson_interval(50, 50)[1] == 1.0


def test_selection_refuses_training_scenes_and_missing_steps(tmp_path, make_dataset, bad_input):
    train = generated(make_dataset, tmp_path / "train_data", seed=0)
    same_seed = generated(make_dataset, tmp_path / "same_seed", seed=0)
    held = generated(make_dataset, tmp_path / "held_out", seed=1)
    run = training_run(tmp_path / "run", train, [1000, 2000])
    common = ["select", "--run", run, "--suite", "libero_object", "--tasks", "0", "--trials", "2", "--out", tmp_path / "sel"]
    bad_input([*common, "--starts", train], "is the run's training dataset", untouched=[tmp_path / "sel"])
    bad_input([*common, "--starts", same_seed], "training data's --seed 0", untouched=[tmp_path / "sel"])
    bad_input([*common, "--starts", held, "--steps", "1000,1500"], "keeps no checkpoint of step(s) 1500",
              untouched=[tmp_path / "sel"])
    bad_input([*common, "--starts", held, "--steps", "late"], "comma-separated step numbers", untouched=[tmp_path / "sel"])
    bad_input([*common, "--starts", held, "--trials", "9"], "has 2 episodes in", untouched=[tmp_path / "sel"])
