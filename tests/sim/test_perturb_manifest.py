"""Manifests: round trip, the instruction the policy gets, one clear error per bad line."""

import json

import numpy as np
import pytest

from pokevla.common.errors import PokeVLAError
from pokevla.robustness.build import build_manifest
from pokevla.sim.perturb import DIMENSIONS
from pokevla.sim.perturb.manifest import read_manifest, write_manifest
from pokevla.sim import suites

NON_LAYOUT = tuple(d for d in DIMENSIONS if d != "layout")


def test_build_is_deterministic_and_round_trips(tmp_path):
    variants = build_manifest("libero_goal", 6, seed=4, dimensions=NON_LAYOUT, log=lambda _: None)
    assert variants == build_manifest("libero_goal", 6, seed=4, dimensions=NON_LAYOUT, log=lambda _: None)
    assert variants != build_manifest("libero_goal", 6, seed=5, dimensions=NON_LAYOUT, log=lambda _: None)
    assert [v.level for v in variants[:6]] == [1, 2, 3, 4, 5, 1]
    path = tmp_path / "m.jsonl"
    write_manifest(path, variants)
    again, errors = read_manifest(path)
    assert errors == [] and again == variants


def test_instruction_is_the_task_or_its_rewrite_never_the_perturbation(tmp_path):
    for v in build_manifest("libero_spatial", 5, dimensions=NON_LAYOUT, log=lambda _: None):
        task = suites.get_task(v.suite, v.task_id)
        if v.dimension == "language":
            assert v.instruction == v.spec.instruction != task.instruction
        else:
            assert v.instruction == task.instruction


def test_bad_lines_are_reported_by_number_and_skipped(tmp_path):
    good = build_manifest("libero_object", 2, dimensions=("camera",), log=lambda _: None)
    lines = [json.dumps(v.to_json()) for v in good]
    bad = [
        "{not json",
        json.dumps(good[0].to_json() | {"id": "x1", "dimension": "lite"}),
        json.dumps(good[0].to_json() | {"id": "x2", "level": 7}),
        json.dumps(good[0].to_json() | {"id": "x3", "task_id": 42}),
        json.dumps(good[0].to_json() | {"id": "x4", "instruction": "pick up the soup view 11 15 100 0 0"}),
        json.dumps(good[0].to_json() | {"id": "x5", "params": {"level": 1, "kind": "orbit", "zoom": 2}}),
    ]
    path = tmp_path / "m.jsonl"
    path.write_text("\n".join([lines[0], *bad, lines[1]]) + "\n")
    variants, errors = read_manifest(path)
    assert [v.id for v in variants] == [good[0].id, good[1].id]
    assert len(errors) == len(bad)
    assert errors[0].startswith("m.jsonl line 2: not valid JSON")
    assert errors[1] == ("m.jsonl line 3: unknown dimension 'lite'; choose from " + ", ".join(DIMENSIONS))
    assert errors[2].startswith("m.jsonl line 4: level 7")
    assert errors[3].startswith("m.jsonl line 5:") and "task id 42" in errors[3]
    assert errors[4].startswith("m.jsonl line 6: instruction")
    assert errors[5].startswith("m.jsonl line 7: unknown camera parameter(s) zoom")


def test_missing_manifest_and_unknown_dimension_are_one_line_errors(tmp_path):
    with pytest.raises(PokeVLAError, match="does not exist"):
        read_manifest(tmp_path / "none.jsonl")
    with pytest.raises(PokeVLAError, match="unknown dimension 'lite'"):
        build_manifest("libero_goal", 1, dimensions=("lite",))


def test_summary_is_episode_weighted():
    from pokevla.robustness.evaluate import summarize

    records = [{"id": str(i), "suite": suite, "dimension": d, "level": lv, "success": s}
               for i, (suite, d, lv, s) in enumerate([("libero_goal", "camera", 1, True), ("libero_goal", "camera", 2, False),
                                                     ("libero_goal", "noise", 1, True), ("libero_10", "noise", 1, True),
                                                     ("libero_10", "noise", 3, True)])]
    records.append({"id": "e", "suite": "libero_10", "dimension": "light", "level": 1, "error": "SimulatorError: boom"})
    summary = summarize(records)
    assert summary["total"] == {"episodes": 5, "successes": 4, "success_rate": 0.8}
    assert summary["per_dimension"]["camera"]["success_rate"] == 0.5
    assert summary["per_level"]["noise"]["1"] == {"episodes": 2, "successes": 2, "success_rate": 1.0}
    assert summary["errors"] == [{"id": "e", "error": "SimulatorError: boom"}]
    assert summary["per_suite"]["libero_goal"] == {"episodes": 3, "successes": 2, "success_rate": 0.6667}
    assert summary["per_suite_dimension"]["libero_10"] == {"noise": {"episodes": 2, "successes": 2, "success_rate": 1.0}}
    assert np.isclose(summary["per_dimension"]["noise"]["success_rate"], 1.0)


def test_every_distractor_category_has_its_assets():
    from libero.libero.envs.objects import get_object_fn

    from pokevla.sim.perturb.layout import DISTRACTOR_CATEGORIES

    for category in DISTRACTOR_CATEGORIES:
        get_object_fn(category)(name=f"{category}_1")  # parses the object's MJCF and meshes


def test_evaluate_manifest_skips_bad_lines_resumes_and_writes_results(tmp_path, monkeypatch):
    import pokevla.robustness.evaluate as ev

    variants = build_manifest("libero_goal", 3, dimensions=("camera", "noise"), log=lambda _: None)
    manifest = tmp_path / "m.jsonl"
    write_manifest(manifest, variants)
    with open(manifest, "a") as f:
        f.write(json.dumps(variants[0].to_json() | {"id": "bad", "dimension": "lite"}) + "\n")
    ran = []

    def fake_episode(job):
        variant, _, _ = job
        ran.append(variant.id)
        return {"id": variant.id, "digest": variant.digest, "suite": variant.suite, "dimension": variant.dimension,
                "level": variant.level, "success": variant.level != 2, "steps": 5, "seconds": 0.0}

    monkeypatch.setattr(ev, "run_variant", fake_episode)
    settings = ev.EpisodeSettings(render=False)
    results = ev.evaluate_manifest(None, manifest, 1, tmp_path / "out", settings=settings, log=lambda _: None)
    assert sorted(ran) == sorted(v.id for v in variants)
    assert results["summary"]["total"] == {"episodes": 6, "successes": 4, "success_rate": round(4 / 6, 4)}
    assert results["summary"]["per_level"]["camera"]["2"]["successes"] == 0
    assert results["manifest"]["skipped_lines"] == [
        "m.jsonl line 7: unknown dimension 'lite'; choose from " + ", ".join(DIMENSIONS)]
    assert {"pokevla", "mujoco", "numpy"} <= set(results["versions"])
    assert json.loads((tmp_path / "out" / "results.json").read_text())["episodes"] == 6
    assert (tmp_path / "out" / "robustness.png").stat().st_size > 1000
    ran.clear()
    ev.evaluate_manifest(None, manifest, 1, tmp_path / "out", settings=settings, log=lambda _: None)
    assert ran == []  # resumed from the journal
    with pytest.raises(PokeVLAError, match="holds another evaluation"):  # other settings are not mixed in
        ev.evaluate_manifest(None, manifest, 1, tmp_path / "out", settings=ev.EpisodeSettings(render=False, seed=1),
                             log=lambda _: None)


def test_run_variant_builds_its_env_with_the_settings_seed(monkeypatch):
    import pokevla.robustness.evaluate as ev
    import pokevla.sim.parallel as parallel

    built = []

    def capture(config):
        built.append(config)
        raise RuntimeError("no simulator needed")

    monkeypatch.setattr(parallel, "cached_env", capture)
    variant = build_manifest("libero_goal", 1, dimensions=("camera",), log=lambda _: None)[0]
    record = ev.run_variant((variant, ev.EpisodeSettings(render=False, seed=7), None))
    assert built[0].seed == 7 and built[0].perturbation == variant.spec
    assert record["error"] == "RuntimeError: no simulator needed"
