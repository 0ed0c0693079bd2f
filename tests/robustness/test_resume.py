"""A robustness run killed part-way resumes from its journal: no finished episode lost or repeated,
a torn last record redone, a changed manifest line re-run. The simulator is replaced by a fake
episode so the journal logic runs in seconds."""

import json

import pytest

from pokevla.robustness import evaluate as robustness
from pokevla.robustness.build import build_manifest
from pokevla.sim.perturb.manifest import write_manifest

SETTINGS = robustness.EpisodeSettings(render=False)


@pytest.fixture
def fake_episodes(monkeypatch):
    """Episodes run in this process through a fake `run_variant`; `kill_after` raises mid-run."""
    played: list[str] = []
    control = {"kill_after": None}

    def fake_run_variant(job):
        variant = job[0]
        played.append(variant.id)
        return {"id": variant.id, "digest": variant.digest, "suite": variant.suite, "task_id": variant.task_id,
                "dimension": variant.dimension, "level": variant.level, "success": len(played) % 2 == 1,
                "steps": 3, "seconds": 0.0}

    def in_process(fn, jobs, workers, cluster):
        for i, job in enumerate(jobs):
            if control["kill_after"] is not None and i == control["kill_after"]:
                raise KeyboardInterrupt
            yield fn(job)

    monkeypatch.setattr(robustness, "run_variant", fake_run_variant)
    monkeypatch.setattr("pokevla.sim.parallel.map_unordered", in_process)
    return played, control


def journal_ids(out):
    return [json.loads(line)["id"] for line in (out / "episodes.jsonl").read_text().splitlines()]


def test_a_killed_run_resumes_without_losing_or_repeating_an_episode(tmp_path, fake_episodes):
    played, control = fake_episodes
    manifest = tmp_path / "m.jsonl"
    variants = build_manifest("libero_object", 4, dimensions=("language",), log=lambda m: None)
    write_manifest(manifest, variants)
    out = tmp_path / "run"

    control["kill_after"] = 2
    with pytest.raises(KeyboardInterrupt):
        robustness.evaluate_manifest(lambda: None, manifest, 1, out, settings=SETTINGS, log=lambda m: None)
    assert journal_ids(out) == played == [v.id for v in variants[:2]]

    with open(out / "episodes.jsonl", "a") as f:  # power lost while the third record was written
        f.write('{"id": "libero_object/t2/language/2", "dig')
    control["kill_after"] = None
    results = robustness.evaluate_manifest(lambda: None, manifest, 1, out, settings=SETTINGS, log=lambda m: None)
    assert sorted(journal_ids(out)) == sorted(v.id for v in variants)  # each once, the torn one redone
    assert played == [v.id for v in variants]
    assert results["episodes"] == 4 and results["summary"]["total"]["episodes"] == 4

    again = robustness.evaluate_manifest(lambda: None, manifest, 1, out, settings=SETTINGS, log=lambda m: None)
    assert played == [v.id for v in variants] and again["summary"] == results["summary"]  # nothing left to run


def test_a_changed_manifest_line_is_run_again_and_the_old_episode_no_longer_counts(tmp_path, fake_episodes):
    played, _ = fake_episodes
    manifest = tmp_path / "m.jsonl"
    variants = build_manifest("libero_object", 2, dimensions=("language",), log=lambda m: None)
    write_manifest(manifest, variants)
    out = tmp_path / "run"
    robustness.evaluate_manifest(lambda: None, manifest, 1, out, settings=SETTINGS, log=lambda m: None)

    lines = [v.to_json() for v in variants]
    lines[1]["seed"] += 1
    write_manifest(manifest, lines)
    results = robustness.evaluate_manifest(lambda: None, manifest, 1, out, settings=SETTINGS, log=lambda m: None)
    assert played == [variants[0].id, variants[1].id, variants[1].id]
    assert results["episodes"] == 2  # the episode of the old line is kept in the journal but not counted
