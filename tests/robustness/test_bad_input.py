"""Bad `pokevla robustness` input: one line, exit status 2, nothing written, and refused before the
simulator starts (layout variants, previews and benchmarks take minutes in it)."""

import json

import pytest


@pytest.fixture
def not_a_folder(tmp_path):
    path = tmp_path / "file"
    path.write_text("")
    return path


@pytest.mark.parametrize("argv, text", [
    (["build", "--suite", "libero_object", "--per-dimension", "1", "--out", "/proc/pokevla/m.jsonl"],
     "cannot write to output directory /proc/pokevla"),
    (["build", "--suite", "libero_object", "--dimensions", "layout", "--per-dimension", "1", "--out", "{file}/m.jsonl"],
     "choose another --out"),
    (["build", "--suite", "libero_object", "--per-dimension", "1", "--out", "{tmp}"], "is a directory; name a file"),
    (["build", "--suite", "libero_object", "--per-dimension", "0", "--out", "{tmp}/m.jsonl"],
     "--per-dimension must be at least 1"),
    (["build", "--suite", "libero_object", "--dimensions", "lite", "--out", "{tmp}/m.jsonl"], "unknown dimension 'lite'"),
    (["preview", "--suite", "libero_object", "--out", "/proc/pokevla/preview"], "choose another --out"),
    (["preview", "--suite", "libero_object", "--out", "{file}/preview"], "choose another --out"),
    (["preview", "--suite", "libero_object", "--resolution", "0", "--out", "{tmp}/preview"],
     "--resolution must be at least 1"),
    (["preview", "--suite", "libero_object", "--task", "99", "--out", "{tmp}/preview"], "task id 99 does not exist"),
    (["bench", "--suite", "libero_object", "--json", "/proc/pokevla/bench.json"], "choose another --json"),
    (["bench", "--suite", "libero_object", "--steps", "0", "--json", "{tmp}/bench.json"], "--steps must be at least 1"),
    (["bench", "--suite", "libero_object", "--steps", "-3"], "--steps must be at least 1, got -3"),
    (["bench", "--suite", "libero_object", "--resolution", "0"], "--resolution must be at least 1"),
    (["eval", "--policy", "expert", "--manifest", "{tmp}/m.jsonl", "--out", "{tmp}/eval", "--dimensions", "lite"],
     "--dimensions 'lite': unknown lite; choose from camera, robot, language"),
    (["eval", "--policy", "expert", "--manifest", "{tmp}/m.jsonl", "--out", "{tmp}/eval", "--dimensions", ","],
     "--dimensions ',': empty; choose from camera"),
])
def test_bad_settings_are_refused_before_the_simulator_starts(argv, text, tmp_path, not_a_folder, bad_input):
    argv = [a.replace("{tmp}", str(tmp_path)).replace("{file}", str(not_a_folder)) for a in argv]
    outputs = [tmp_path / "m.jsonl", tmp_path / "preview", tmp_path / "bench.json", not_a_folder]
    bad_input(["robustness", *argv], text, untouched=outputs)


def camera_line(**changes) -> str:
    from pokevla.sim import suites

    line = {"id": "v0", "suite": "libero_object", "task_id": 0, "dimension": "camera", "level": 1, "seed": 0,
            "trial": 0, "instruction": suites.get_task("libero_object", 0).instruction,
            "params": {"level": 1, "kind": "orbit", "azimuth_deg": 10.0}}
    return json.dumps({**line, **changes})


@pytest.mark.parametrize("lines, text", [
    (["{not json", "[1]", '{"id": "x"}'], "holds no valid variant (m.jsonl line 1: not valid JSON"),
    ([], "holds no valid variant; write one with `pokevla robustness build`"),
    ([camera_line(level="2")], "level '2' is not an integer"),
    ([camera_line(params={"level": 1, "kind": "orbit", "azimuth_deg": "10"})], "camera azimuth_deg '10' is not a number"),
    ([camera_line(dimension="light", params={"level": 1, "kind": "diffuse", "diffuse": [1, "a", 3]})],
     "light diffuse [1, 'a', 3] is not a list of 3 numbers"),
    ([camera_line(dimension="light", params={"level": 1, "kind": "diffuse", "diffuse": [1, 1]})],
     "light diffuse [1, 1] is not a list of 3 numbers"),
    ([camera_line(dimension="noise", params={"level": 1, "kind": "fog", "severity": 1.5})],
     "noise severity 1.5 is not an integer"),
    ([camera_line(params={"level": 1, "kind": 3}), camera_line(id=7)], "camera kind 3 is not a string; 1 more bad line"),
    # manifests built before the noise dimension followed the official tables held additive noise
    ([camera_line(dimension="noise", params={"level": 1, "kind": "gaussian_noise", "severity": 2})],
     "noise kind 'gaussian_noise' is not one of motion_blur, gaussian_blur, zoom_blur, fog, glass_blur"),
    ([camera_line(dimension="layout", params={"level": 1, "kind": "scene", "bddl_text": "(define (problem p))"})],
     "a 'scene' layout needs bddl_text and sim_state and nothing else"),
])
def test_a_manifest_without_a_valid_line_is_refused_before_any_episode(lines, text, tmp_path, bad_input):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(line + "\n" for line in lines))
    out = tmp_path / "eval"
    bad_input(["robustness", "eval", "--policy", "expert", "--manifest", manifest, "--out", out], text, untouched=[out])
