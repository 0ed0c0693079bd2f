"""Bad `pokevla sim` input: refused in one line with exit status 2 before a simulator starts (these
tests run without one: starting it fails them)."""

import pytest


@pytest.mark.parametrize("flags, text", [
    (["--steps", "0"], "--steps must be at least 1, got 0"),
    (["--steps", "-5"], "--steps must be at least 1, got -5"),
    (["--resolution", "0"], "--resolution must be at least 1, got 0"),
    (["--json", "/proc/pokevla/bench.jsonl"], "choose another --json"),
    (["--json", "{tmp}"], "is a directory; name a file"),
    (["--task", "99"], "task id 99 does not exist"),
    (["--suite", "libero_nope"], "unknown suite 'libero_nope'"),
])
def test_bad_bench_settings_are_refused_before_the_simulator_starts(flags, text, tmp_path, bad_input):
    result = tmp_path / "bench.jsonl"  # a flag given later (--json ...) overrides it
    bad_input(["sim", "bench", "--json", result, *[f.replace("{tmp}", str(tmp_path)) for f in flags]], text,
              untouched=[result])


def test_an_unknown_suite_is_one_line(bad_input):
    bad_input(["sim", "tasks", "--suite", "libero_nope", "--json"], "unknown suite 'libero_nope'")
