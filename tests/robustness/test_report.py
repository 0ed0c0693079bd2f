"""LIBERO-Plus reporting: the stratified sample, the official coverage and the table beside the paper's rows.
Episodes are faked (as in test_resume) so the manifest logic runs in seconds."""

import json
from collections import Counter

import pytest

from pokevla.common.errors import ConfigError, PokeVLAError
from pokevla.robustness import evaluate as robustness
from pokevla.robustness.build import build_manifest
from pokevla.robustness.official import import_official
from pokevla.robustness.report import PAPER_ROWS, official_coverage, stratified_sample
from pokevla.sim.perturb.manifest import read_manifest, write_manifest
from tests.robustness.test_official import fake  # noqa: F401  (the fixture: a miniature official wheel)
from tests.robustness.test_resume import fake_episodes  # noqa: F401

SETTINGS = robustness.EpisodeSettings(render=False)


@pytest.fixture(scope="module")
def two_suites():
    quiet = lambda m: None  # noqa: E731
    return (build_manifest("libero_object", 6, dimensions=("language", "camera"), log=quiet)
            + build_manifest("libero_spatial", 2, dimensions=("language", "camera", "robot"), log=quiet))


def test_the_sample_spreads_over_every_suite_and_dimension_and_is_reproducible(two_suites):
    cells = Counter((v.suite, v.dimension) for v in two_suites)
    assert len(cells) == 5 and cells[("libero_spatial", "robot")] == 2
    sample = stratified_sample(two_suites, 12, seed=3)
    got = Counter((v.suite, v.dimension) for v in sample)
    assert set(got) == set(cells) and sum(got.values()) == 12
    # the two small spatial cells are full (2 each); the 6 left are shared by the object cells and spatial camera
    assert got[("libero_spatial", "robot")] == 2 and got[("libero_object", "language")] == got[("libero_object", "camera")]
    assert max(got.values()) - min(got.values()) <= 1
    assert [v.id for v in stratified_sample(list(reversed(two_suites)), 12, seed=3)] == [v.id for v in sample]
    assert {v.id for v in stratified_sample(two_suites, 12, seed=4)} != {v.id for v in sample}
    assert {v.id for v in sample} <= {v.id for v in stratified_sample(two_suites, 16, seed=3)}  # growing keeps
    assert len(stratified_sample(two_suites, 1000, seed=0)) == len(two_suites)


def test_a_sample_too_small_to_represent_every_cell_is_refused(two_suites):
    with pytest.raises(ConfigError, match="--sample 4 cannot represent the manifest's 5"):
        stratified_sample(two_suites, 4, seed=0)


def test_a_sampled_run_evaluates_only_its_sample_and_claims_its_folder(tmp_path, two_suites, fake_episodes):
    played, _ = fake_episodes
    manifest = tmp_path / "m.jsonl"
    write_manifest(manifest, two_suites)
    out = tmp_path / "run"
    results = robustness.evaluate_manifest(lambda: None, manifest, 1, out, settings=SETTINGS, log=lambda m: None,
                                           sample=(10, 0))
    assert len(played) == 10 and results["sample"] == {"n": 10, "seed": 0, "variants": 10}
    summary = results["summary"]
    assert sum(row["episodes"] for row in summary["per_suite"].values()) == 10
    assert summary["per_suite_dimension"]["libero_spatial"]["robot"]["episodes"] == 2
    assert (out / "table.md").read_text().startswith("| policy | camera |")
    assert "pokevla-built manifest" in results["table"]  # no official line: no coverage claim
    with pytest.raises(PokeVLAError):
        robustness.evaluate_manifest(lambda: None, manifest, 1, out, settings=SETTINGS, log=lambda m: None,
                                     sample=(12, 0))


def test_a_run_on_some_tasks_evaluates_only_theirs_and_claims_its_folder(tmp_path, two_suites, fake_episodes):
    played, _ = fake_episodes
    manifest = tmp_path / "m.jsonl"
    write_manifest(manifest, two_suites)
    theirs = [v for v in two_suites if v.suite == "libero_object" and v.task_id in (0, 1)]
    assert 0 < len(theirs) < len([v for v in two_suites if v.suite == "libero_object"])
    out = tmp_path / "run"
    results = robustness.evaluate_manifest(lambda: None, manifest, 1, out, settings=SETTINGS, log=lambda m: None,
                                           tasks=("libero_object", (0, 1)), sample=(2, 0))
    assert results["tasks"] == {"suite": "libero_object", "task_ids": [0, 1], "variants": len(theirs)}
    assert results["manifest"]["variants"] == len(two_suites) and len(played) == 2  # the manifest's runnable count
    assert set(played) <= {v.id for v in theirs}
    assert set(results["summary"]["per_suite"]) == {"libero_object"}
    with pytest.raises(PokeVLAError):  # the folder belongs to that selection
        robustness.evaluate_manifest(lambda: None, manifest, 1, out, settings=SETTINGS, log=lambda m: None,
                                     sample=(2, 0))
    with pytest.raises(ConfigError, match="no runnable variant of libero_goal task"):
        robustness.evaluate_manifest(lambda: None, manifest, 1, tmp_path / "none", settings=SETTINGS,
                                     log=lambda m: None, tasks=("libero_goal", (0,)))


def test_a_run_on_some_dimensions_evaluates_only_theirs_and_claims_its_folder(tmp_path, two_suites, fake_episodes):
    played, _ = fake_episodes
    manifest = tmp_path / "m.jsonl"
    write_manifest(manifest, two_suites)
    theirs = {v.id for v in two_suites if v.dimension in ("robot", "language")}
    out = tmp_path / "run"
    results = robustness.evaluate_manifest(lambda: None, manifest, 1, out, settings=SETTINGS, log=lambda m: None,
                                           dimensions=("robot", "language"))
    assert results["dimensions"] == {"names": ["robot", "language"], "variants": len(theirs)}
    assert set(played) == theirs and results["manifest"]["variants"] == len(two_suites)
    assert set(results["summary"]["per_dimension"]) == {"robot", "language"}
    with pytest.raises(PokeVLAError):  # the folder belongs to that selection
        robustness.evaluate_manifest(lambda: None, manifest, 1, out, settings=SETTINGS, log=lambda m: None)
    with pytest.raises(ConfigError, match="no runnable variant of dimension.s. noise .it holds camera, language, robot"):
        robustness.evaluate_manifest(lambda: None, manifest, 1, tmp_path / "none", settings=SETTINGS,
                                     log=lambda m: None, dimensions=("noise",))


def test_official_runs_state_what_they_cover_beside_the_paper(fake, tmp_path, fake_episodes):  # noqa: F811
    wheel, installed = fake
    import_official(wheel, tmp_path / "official", installed, log=lambda _: None)
    manifest = tmp_path / "official" / "manifest.jsonl"
    coverage = official_coverage(manifest)
    assert coverage["variants"] == 14 and coverage["runnable"] == len(read_manifest(manifest)[0]) == 7
    assert coverage["per_dimension"]["camera"] == {"variants": 4, "runnable": 3}
    assert coverage["per_dimension"]["robot"] == {"variants": 2, "runnable": 1}  # one of them with the camera
    assert coverage["per_dimension"]["noise"] == coverage["per_dimension"]["language"] == {"variants": 1, "runnable": 1}
    assert coverage["per_dimension"]["layout"] == {"variants": 2, "runnable": 1}
    assert coverage["per_suite"] == {"libero_spatial": {"variants": 14, "runnable": 7}}

    logged = []
    results = robustness.evaluate_manifest(lambda: None, manifest, 1, tmp_path / "run", settings=SETTINGS,
                                           policy_name="expert", log=logged.append, sample=(5, 0))
    assert results["manifest"]["official_coverage"] == coverage and results["manifest"]["variants"] == 7
    skipped = [m for m in logged if m.startswith("skipped")]
    assert len(skipped) == robustness.SHOWN_SKIPPED + 1 and "more line(s)" in skipped[-1]
    assert len(results["manifest"]["skipped_lines"]) == 7  # every skipped line kept in results.json

    table = results["table"]
    for name, row in PAPER_ROWS.items():
        assert f"| {name} | {row['camera']:.1f} |" in table
    ours = next(line for line in table.splitlines() if line.startswith("| expert "))
    cells = [c.strip() for c in ours.strip("|").split("|")]
    # camera, robot, language, light, background, noise, layout, Total: one episode per runnable cell
    assert [c.split(" ")[-1] for c in cells[1:]] == ["(1)", "(1)", "(1)", "-", "-", "(1)", "(1)", "(5)"]
    assert "covers 5 of the 14 official variants" in table
    assert "camera 1/4, robot 1/2, language 1/1, light 0/1" in table and "absent from our Total: light, background;" in table
    json.dumps(results)  # the table and coverage are plain JSON in results.json


def test_the_paper_rows_are_the_published_totals():
    assert {name: row["total"] for name, row in PAPER_ROWS.items()} == {
        "PokeVLA (paper)": 79.3, "OpenVLA-OFT": 69.6, "pi0": 53.6, "VLA-Adapter": 59.1}


def test_the_cli_samples_without_rendering_and_prints_the_table(tmp_path, two_suites, fake_episodes, capsys):
    from pokevla.cli import main

    played, _ = fake_episodes
    manifest = tmp_path / "m.jsonl"
    write_manifest(manifest, two_suites)
    out = tmp_path / "run"
    assert main(["robustness", "eval", "--policy", "expert", "--manifest", str(manifest), "--out", str(out),
                 "--sample", "5", "--seed", "2", "--no-render"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert len(played) == 5 and results["settings"]["render"] is False and results["settings"]["seed"] == 2
    assert results["sample"] == {"n": 5, "seed": 2, "variants": 5}
    assert "\n| policy | camera |" in capsys.readouterr().out
