"""Bad input to dataset generation and the dataset commands: one line, exit status 2, nothing changed."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pokevla.sim.suites import OFFICIAL_INIT_JOINT_STD

# what `pokevla generate demos --suite libero_object --resolution 32` records, so a rerun reaches the data files
GENERATOR = {"suite": "libero_object", "resolution": 32, "fast_render": False, "seed": 0, "fps": 20,
             "action_noise": 0.0, "init_joint_noise": OFFICIAL_INIT_JOINT_STD}
RERUN = ["generate", "demos", "--suite", "libero_object", "--tasks", "0", "--episodes-per-task", "4",
         "--resolution", "32", "--out", "{ds}"]


@pytest.fixture
def dataset(tmp_path, make_dataset):
    root, _ = make_dataset(tmp_path / "ds", [6, 5, 7], ["pick up the bowl"] * 3, resolution=32,
                           extra={"pokevla": {"generator": GENERATOR}})
    return root


def truncate_data_file(ds):
    path = ds / "data/chunk-000/file-001.parquet"
    path.write_bytes(path.read_bytes()[:200])


def garble(name):
    return lambda ds: (ds / name).write_text("{not json")


def info_as_list(ds):
    (ds / "meta/info.json").write_text("[1, 2]")


def nan_statistic(ds):
    stats = json.loads((ds / "meta/stats.json").read_text())
    stats["action"]["mean"][0] = float("nan")
    (ds / "meta/stats.json").write_text(json.dumps(stats))


def undeclare(feature):
    def damage(ds):
        info = json.loads((ds / "meta/info.json").read_text())
        del info["features"][feature]
        (ds / "meta/info.json").write_text(json.dumps(info))
    return damage


def rewrite_column(name, values):
    """Replaces column `name` of the middle episode's data file with `values(rows)`."""
    def damage(ds):
        path = ds / "data/chunk-000/file-001.parquet"
        table = pq.read_table(path)
        column = values(table[name].to_pylist())
        table = table.set_column(table.column_names.index(name), name, column)
        pq.write_table(table.replace_schema_metadata(pq.read_schema(path).metadata), path)
    return damage


def _cut_third_png(rows):
    rows[2] = {"bytes": rows[2]["bytes"][:40], "path": None}  # frame 2 of 5: neither end of the episode
    return pa.array(rows, type=pa.struct([("bytes", pa.binary()), ("path", pa.string())]))


damaged_png = rewrite_column("observation.images.primary", _cut_third_png)
action_as_text = rewrite_column("action", lambda rows: pa.array([str(r) for r in rows]))


VALIDATE = ["dataset", "validate", "{ds}"]


@pytest.mark.parametrize("damage, argv, text", [
    pytest.param(truncate_data_file, RERUN, "file-001.parquet cannot be read", id="rerun-truncated-data-file"),
    pytest.param(garble("meta/info.json"), RERUN, "meta/info.json is not valid JSON", id="rerun-invalid-info"),
    pytest.param(info_as_list, RERUN, "meta/info.json holds an array, not an object", id="rerun-info-list"),
    pytest.param(nan_statistic, VALIDATE, "action.mean holds values that are not finite numbers", id="validate-nan-stats"),
    pytest.param(undeclare("observation.masks.wrist"), VALIDATE,
                 "column(s) observation.masks.wrist are not declared in info.json", id="validate-undeclared-feature"),
    pytest.param(undeclare("action"), VALIDATE, "column(s) action are not declared in info.json",
                 id="validate-undeclared-action"),
    pytest.param(damaged_png, VALIDATE, "observation.images.primary of row 2 does not decode", id="validate-png-mid-episode"),
    pytest.param(action_as_text, VALIDATE, "column(s) action do not have the dtype/shape", id="validate-wrong-type"),
    pytest.param(garble("meta/stats.json"), VALIDATE, "meta/stats.json is not valid JSON", id="validate-invalid-stats"),
    pytest.param(info_as_list, VALIDATE, "meta/info.json holds an array", id="validate-info-list"),
    pytest.param(info_as_list, ["dataset", "info", "{ds}"], "meta/info.json holds an array", id="info-info-list"),
])
def test_a_damaged_dataset_is_named_in_one_line(dataset, damage, argv, text, bad_input):
    damage(dataset)
    bad_input([a.replace("{ds}", str(dataset)) for a in argv], text, untouched=[dataset])


@pytest.mark.parametrize("argv, text", [
    (["generate", "demos", "--suite", "libero_object", "--tasks", "5-3", "--episodes-per-task", "1", "--out", "{out}"],
     "task range '5-3' is empty"),
    (["generate", "demos", "--suite", "libero_object", "--episodes-per-task", "0", "--out", "{out}"],
     "--episodes-per-task must be at least 1"),
    (["generate", "demos", "--suite", "libero_object", "--episodes-per-task", "1", "--resolution", "16", "--out", "{out}"],
     "--resolution 16 is out of range"),
    (["generate", "demos", "--suite", "libero_object", "--episodes-per-task", "1", "--out", "{out}",
      "--json", "/proc/pokevla/summary.json"], "choose another --json"),
    (["generate", "demos", "--suite", "libero_object", "--episodes-per-task", "1", "--out", "{out}",
      "--json", "{tmp}"], "is a directory; name a file"),
    # the quickstart checks every stage's settings before its first stage starts
    (["quickstart", "--out", "{out}", "--episodes-per-task", "-1"], "--episodes-per-task must be at least 1"),
    (["quickstart", "--out", "{out}", "--steps", "0"], "--steps must be at least 1"),
    (["quickstart", "--out", "{out}", "--batch-size", "0"], "--batch-size must be at least 1"),
    (["quickstart", "--out", "{out}", "--trials", "0"], "ask for --trials 1 to 50"),
])
def test_bad_generation_settings_are_refused_before_any_work(argv, text, tmp_path, bad_input):
    out = tmp_path / "out"
    bad_input([a.replace("{out}", str(out)).replace("{tmp}", str(tmp_path)) for a in argv], text, untouched=[out])
