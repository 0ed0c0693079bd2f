"""Bad `pokevla train` input beyond the numbers of test_reliability: one line, exit status 2, and no
run folder created (a damaged dataset is found before the first step, not inside it)."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from .test_train import demos  # noqa: F401  (the fixture)


@pytest.mark.parametrize("flags, text", [
    (["--save-every", "0"], "--save-every must be at least 1, got 0"),
    (["--log-every", "0"], "--log-every must be at least 1, got 0"),
    (["--grad-accum", "0"], "--grad-accum must be at least 1, got 0"),
    (["--loader-workers", "-1"], "--loader-workers must be at least 0, got -1"),
    (["--threads", "-1"], "--threads must be at least 0, got -1"),
    (["--warmup-ratio", "1"], "--warmup-ratio must be in [0, 1)"),
    (["--llm.num-heads", "3"], "--llm.num-heads 3 does not divide its width 128"),
    (["--vision.siglip.num-heads", "3"], "--vision.siglip.num-heads 3 does not divide its width 64"),
    (["--expert.num-heads", "5"], "--expert.num-heads 5 does not divide its width 128"),
    (["--expert.chunk-size", "0"], "--expert.chunk-size must be at least 1, got 0"),
    (["--feature-map", "observation.images.primary"], "write OURS=THEIRS"),
])
def test_bad_settings_are_refused_before_the_run_folder_exists(flags, text, demos, tmp_path, bad_input):  # noqa: F811
    run = tmp_path / "run"
    bad_input(["train", "--preset", "tiny", "--dataset", demos, "--out", run, *flags], text, untouched=[run])


def _rewrite(ds, name, column):
    """Replaces column `name` of episode 1's data file by column(its rows)."""
    path = ds / "data/chunk-000/file-001.parquet"
    table = pq.read_table(path)
    table = table.set_column(table.column_names.index(name), name, column(table[name].to_pylist()))
    pq.write_table(table.replace_schema_metadata(pq.read_schema(path).metadata), path)


def _cut_png(rows):
    rows[2] = {"bytes": rows[2]["bytes"][:40], "path": None}  # frame 2 of episode 1's 5
    return pa.array(rows, type=pa.struct([("bytes", pa.binary()), ("path", pa.string())]))


DAMAGE = {
    "stats-invalid": (lambda ds: (ds / "meta/stats.json").write_text("{not json"), "meta/stats.json is not valid JSON"),
    "info-list": (lambda ds: (ds / "meta/info.json").write_text("[]"), "meta/info.json holds an array, not an object"),
    "info-features-list": (lambda ds: (ds / "meta/info.json").write_text(json.dumps(
        {**json.loads((ds / "meta/info.json").read_text()), "features": ["action"]})), "features must map each name"),
    "column-missing": (lambda ds: pq.write_table(pq.read_table(ds / "data/chunk-000/file-001.parquet").drop(["action"]),
                                                 ds / "data/chunk-000/file-001.parquet"),
                       "file-001.parquet lacks the column action that meta/info.json declares"),
    "column-wrong-type": (lambda ds: _rewrite(ds, "observation.state", lambda rows: pa.array([str(r) for r in rows])),
                          "file-001.parquet: column observation.state holds string, not the float32 [8]"),
    "png-mid-episode": (lambda ds: _rewrite(ds, "observation.images.wrist", _cut_png),
                        "observation.images.wrist of frame 8 (episode 1) does not decode"),
}


@pytest.mark.parametrize("case", DAMAGE)
def test_a_damaged_dataset_is_named_before_training_starts(case, demos, tmp_path, bad_input):  # noqa: F811
    damage, text = DAMAGE[case]
    damage(demos)
    run = tmp_path / "run"
    bad_input(["train", "--preset", "tiny", "--dataset", demos, "--out", run, "--steps", "1"], text, untouched=[run])


def test_a_damaged_run_record_is_one_line_and_nothing_changes(tmp_path, bad_input):
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text('{"model": ')
    bad_input(["train", "--out", run, "--resume"], "run.json is not valid JSON", untouched=[run])
