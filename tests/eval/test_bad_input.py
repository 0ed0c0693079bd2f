"""Bad input to `pokevla eval` (and `pokevla expert`, which runs through it): one line, exit status 2,
nothing written, no simulator started."""

import json

import pytest

from pokevla.sim import suites

EXPERT = ["eval", "--policy", "expert", "--suite", "libero_object", "--tasks", "0", "--trials", "3", "--videos", "0"]


def manifest_line(**changes) -> dict:
    """A valid camera variant of libero_object task 0, with `changes` (params.X changes its parameter X)."""
    line = {"id": "v0", "suite": "libero_object", "task_id": 0, "dimension": "camera", "level": 1, "seed": 0,
            "trial": 0, "instruction": suites.get_task("libero_object", 0).instruction,
            "params": {"level": 1, "kind": "orbit", "azimuth_deg": 10.0}}
    for key, value in changes.items():
        if key.startswith("params_"):
            line["params"][key.removeprefix("params_")] = value
        else:
            line[key] = value
    return line


@pytest.fixture
def checkpoint(tmp_path):
    """Just enough of a checkpoint folder for the evaluator to read its training.json."""
    folder = tmp_path / "checkpoint"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    return folder


@pytest.mark.parametrize("training, text", [
    ("{not json", "training.json is not valid JSON"),
    ("[1, 2]", "training.json holds an array, not an object"),
    ('{"data": 3}', "training.json: data is not an object"),
])
def test_a_damaged_training_record_is_one_line(checkpoint, training, text, tmp_path, bad_input):
    (checkpoint / "training.json").write_text(training)
    out = tmp_path / "eval"
    bad_input(["eval", "--checkpoint", checkpoint, "--suite", "libero_object", "--out", out], text, untouched=[out])


@pytest.mark.parametrize("claim, text", [
    ("{not json", "evaluation.json is not valid JSON"),
    ("[]", "evaluation.json holds an array, not an object"),
])
def test_a_damaged_evaluation_record_is_one_line(claim, text, tmp_path, bad_input):
    out = tmp_path / "eval"
    out.mkdir()
    (out / "evaluation.json").write_text(claim)
    bad_input([*EXPERT, "--out", out], text, untouched=[out])


@pytest.mark.parametrize("line, text", [
    ("garbled", "episodes.jsonl line 2 is not valid JSON"),
    ('{"task_id": 0}', "episodes.jsonl line 2 lacks trial, success, steps"),
    ("[0, 1]", "episodes.jsonl line 2 is not a JSON object"),
])
def test_a_damaged_journal_line_is_one_line_and_the_results_stay(line, text, tmp_path, monkeypatch, bad_input):
    import pokevla.sim.parallel

    def episodes(run, jobs, workers, cluster=None):  # the journal of a real run, without a simulator
        for job in jobs:
            yield {"task_id": job.task_id, "trial": job.trial, "success": True, "steps": 5, "seconds": 0.1}

    out = tmp_path / "eval"
    monkeypatch.setattr(pokevla.sim.parallel, "map_unordered", episodes)
    from pokevla.cli import main

    assert main([*EXPERT, "--out", str(out)]) == 0
    journal = (out / "episodes.jsonl").read_text().splitlines()
    journal[1] = line
    (out / "episodes.jsonl").write_text("\n".join(journal) + "\n")
    bad_input([*EXPERT, "--out", out], text, untouched=[out])


@pytest.mark.parametrize("lines, text", [
    (["{not json", "[1]", '{"id": "x"}'], "holds no valid variant (bad.jsonl line 1: not valid JSON"),
    ([], "holds no valid variant; write one"),
    ([manifest_line(task_id="0")], "task_id '0' is not an integer"),
    ([manifest_line(task_id=True)], "task_id True is not an integer"),
    ([manifest_line(suite=["libero_object"])], "suite ['libero_object'] is not a string"),
    ([manifest_line(trial="0")], "trial '0' is not an integer or null"),
    ([manifest_line(params_azimuth_deg="left")], "camera azimuth_deg 'left' is not a number"),
    ([manifest_line(params_elevation_deg=[15])], "camera elevation_deg [15] is not a number"),
])
def test_a_manifest_without_a_valid_line_is_refused_when_read(lines, text, tmp_path, bad_input):
    manifest = tmp_path / "bad.jsonl"
    manifest.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    out = tmp_path / "eval"
    bad_input(["eval", "--policy", "expert", "--robustness", manifest, "--out", out], text, untouched=[out])


@pytest.mark.parametrize("argv, text", [
    ([*EXPERT, "--max-steps", "0"], "--max-steps must be at least 1"),
    ([*EXPERT, "--trials", "0"], "ask for --trials 1 to 50"),
    (["expert", "--suite", "libero_object", "--tasks", "0", "--trials", "1", "--json", "/proc/pokevla/r.json"],
     "choose another --json"),
    (["expert", "--suite", "libero_object", "--tasks", "5-3", "--trials", "1"], "task range '5-3' is empty"),
    ([*EXPERT, "--dimensions", "noise"], "--dimensions selects from a manifest: give it with --robustness"),
])
def test_bad_evaluation_settings_are_refused_before_any_work(argv, text, tmp_path, bad_input):
    out = tmp_path / "eval"
    bad_input([*argv, "--out", out], text, untouched=[out])
