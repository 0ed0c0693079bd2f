"""Bad input on the command line ends with one line saying what is wrong, and exit status 2."""

import pytest

from pokevla.cli import main


@pytest.mark.parametrize("argv, message", [
    (["sim", "tasks", "--suite", "libero_nope"], "unknown suite 'libero_nope'"),
    (["generate", "demos", "--suite", "libero_object", "--episodes-per-task", "1", "--out", "/proc/pokevla"], "cannot write to output directory"),
    (["generate", "demos", "--suite", "libero_object", "--tasks", "3,12", "--episodes-per-task", "1", "--out", "{tmp}/d"], "task id 12 does not exist"),
    (["dataset", "validate", "{tmp}/nothing"], "meta/info.json is missing"),
    (["dataset", "info", "{tmp}/nothing"], "meta/info.json is missing"),
    (["eval", "--policy", "expert", "--suite", "libero_goal", "--tasks", "1", "--trials", "51", "--out", "{tmp}/e"], "has 50 init states"),
    (["eval", "--checkpoint", "{tmp}", "--suite", "libero_goal", "--out", "{tmp}/e2"], "neither a training run"),
    (["train", "--dataset", "{tmp}", "--out", "{tmp}/r"], "--preset is required"),
])
def test_one_line_errors(argv, message, tmp_path, capsys):
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_sim_tasks_lists_every_suite(capsys):
    assert main(["sim", "tasks"]) == 0
    out = capsys.readouterr().out
    for suite in ("libero_spatial", "libero_object", "libero_goal", "libero_10"):
        assert suite in out
    assert "put both moka pots on the stove" in out


def test_unknown_preset_is_an_argparse_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--preset", "huge", "--dataset", str(tmp_path), "--out", str(tmp_path / "r")])
    assert exit_info.value.code == 2
    assert "invalid choice: 'huge'" in capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize("flags, text", [
    (["--replan-steps", "-1"], "--replan-steps must be at least 1"),
    (["--replan-steps", "2"], "apply to a model (--checkpoint or --server), not to --policy expert"),
    (["--resolution", "0"], "--resolution 0 is out of range"),
    (["--device", "bogus"], "--device 'bogus'"),
    (["--videos", "-5"], "--videos takes a count"),
    (["--tasks", "5-3"], "task range '5-3' is empty"),
    (["--temporal-ensemble", "-1"], "--temporal-ensemble takes a decay >= 0"),
])
def test_bad_eval_numbers_are_one_line_before_any_work(flags, text, tmp_path, capsys):
    from pokevla.cli import main

    assert main(["eval", "--policy", "expert", "--suite", "libero_object", "--out", str(tmp_path / "e"), *flags]) == 2
    err = capsys.readouterr().err
    assert text in err and err.count("\n") == 1
    assert not (tmp_path / "e").exists()
