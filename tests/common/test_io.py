"""Journals survive torn writes; output directories are held by one process at a time."""

import subprocess
import sys

import pytest

from pokevla.common.errors import PokeVLAError
from pokevla.common.io import append_jsonl, hold_dir, read_jsonl


def test_a_torn_last_line_is_cut_before_the_next_record(tmp_path):
    journal = tmp_path / "episodes.jsonl"
    append_jsonl(journal, {"trial": 0})
    with open(journal, "a") as f:
        f.write('{"trial": 1, "succ')  # power loss in the middle of a write
    assert read_jsonl(journal) == [{"trial": 0}]
    append_jsonl(journal, {"trial": 1})
    assert read_jsonl(journal) == [{"trial": 0}, {"trial": 1}]
    assert journal.read_text().count("\n") == 2


def test_a_journal_that_is_only_a_torn_line(tmp_path):
    journal = tmp_path / "episodes.jsonl"
    journal.write_text('{"tri')
    append_jsonl(journal, {"trial": 5})
    assert read_jsonl(journal) == [{"trial": 5}]


def test_a_damaged_line_in_the_middle_is_one_clear_error(tmp_path):
    journal = tmp_path / "episodes.jsonl"
    journal.write_text('{"trial": 0}\nnot json\n{"trial": 2}\n')
    with pytest.raises(PokeVLAError, match="episodes.jsonl line 2 is not valid JSON"):
        read_jsonl(journal)
    journal.write_text('{"trial": 0}\n[1, 2]\n')
    with pytest.raises(PokeVLAError, match="line 2 is not a JSON object"):
        read_jsonl(journal)


def _hold_in_another_process(path) -> subprocess.CompletedProcess:
    code = ("import sys\nfrom pokevla.common.io import hold_dir\nfrom pokevla.common.errors import PokeVLAError\n"
            f"try:\n    hold_dir({str(path)!r})\nexcept PokeVLAError as e:\n    print(e); sys.exit(3)\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


def test_a_directory_is_held_by_one_process(tmp_path):
    hold_dir(tmp_path / "out")
    hold_dir(tmp_path / "out")  # re-entrant in this process
    other = _hold_in_another_process(tmp_path / "out")
    assert other.returncode == 3 and "is in use by another pokevla process" in other.stdout
    assert _hold_in_another_process(tmp_path / "elsewhere").returncode == 0
    assert _hold_in_another_process(tmp_path / "elsewhere").returncode == 0  # its holder exited: no stale lock


def test_taking_a_directory_removes_a_killed_runs_temporaries(tmp_path):
    out = tmp_path / "out"
    (out / "meta").mkdir(parents=True)
    stale = [out / ".results.json.k2j3.tmp", out / "meta" / ".info.json.x9.tmp", out / ".step_0000500.a1.tmp"]
    kept = [out / "results.json", out / "meta" / "notes.tmp", out / ".lock-free"]
    for f in stale[:2] + kept:
        f.write_text("x")
    (stale[2] / "model.safetensors").parent.mkdir()  # a checkpoint folder killed while being written
    (stale[2] / "model.safetensors").write_text("x")
    hold_dir(out)
    assert not any(f.exists() for f in stale) and all(f.exists() for f in kept)
