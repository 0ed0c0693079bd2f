"""Official variant names -> manifest records: parameters, files, reproducibility, pokevla specs."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import PurePosixPath

from pokevla.common.errors import ConfigError
from pokevla.robustness.official.installed import Installed
from pokevla.robustness.official.wheel import ROOT, STYLE_FILE, Bddl, Wheel, read_bddl, read_init_states
from pokevla.sim.perturb.manifest import Variant
from pokevla.sim.perturb.robot import Q0
from pokevla.sim.perturb.spec import (DIMENSIONS, BackgroundSpec, CameraSpec, LanguageSpec, LayoutSpec, NoiseSpec,
                                      Perturbation, RobotSpec)

FLOOR_PROBLEM = "libero_floor_manipulation"  # the problem class of LIBERO's floor scenes (libero_object)
ARENA_FIXTURES = frozenset({"table", "kitchen_table", "living_room_table", "study_table", "floor", "coffee_table"})
NOISE_KINDS = ("motion_blur", "gaussian_blur", "zoom_blur", "fog", "glass_blur")
DEFAULT_VIEW = (0, 0, 100, 0, 0)  # azimuth, elevation, distance %, yaw, pitch of the unmoved camera

_VIEW = r"_view_(?P<view>-?\d+(?:_-?\d+){4})_initstate_(?P<init>\d+)(?:_noise_(?P<noise>\d+))?"
NAME = re.compile(
    r"(?P<base>.+?)(?:"  # the shortest base after which the whole rest is one suffix
    rf"(?:_language_(?P<language>\d+))?{_VIEW}"
    r"|_light_(?P<light>\d+)|_table_(?P<table>\d+)|_tb_(?P<tb>\d+)|_add_(?P<add>\d+)"
    r"|(?P<moved>_moved)?_level(?P<level>\d+)_sample(?P<sample>\d+))"
)

# Why pokevla cannot run a reproducible variant yet (issue 14 item 3 adds the missing specs).
UNSUPPORTED = {
    "light": "pokevla's LightSpec cannot load an official light scene XML",
    "background": "pokevla's BackgroundSpec cannot load another scene XML (it restyles the base scene's floor and walls)",
    "layout": "pokevla cannot add the official distractor objects",
    "combined": "pokevla applies one perturbation per episode",
}
CAMERA_DEVIATION = ("official pitch P is a rotation of -P deg about world y: pitch_deg = -P; the official rounds "
                    "the pose to 4 decimals after every step, pokevla does not (differences below 2e-4)")
LANGUAGE_DEVIATION = ("level: pokevla's length level, from how many more words the rewrite has than the task's "
                      "instruction (the official levels are empirical and not in the wheel)")
NOISE_DEVIATION = "the official parameters per severity, pixel sizes scaled from 224 px to the rendered width"
NOISE_KIND_DEVIATION = {  # motion and gaussian blur: the official output (tests/robustness/test_official_reference.py)
    "zoom_blur": "OpenCV's bilinear warp (weights in steps of 1/32 px) with the geometry of the official SciPy zoom",
    "fog": "the plasma map is sized to the image (the official crops a 256 px map)",
    "glass_blur": ("each pixel takes a random neighbour's value at once, in place of the official sequential "
                   "copies (its swap of two RGB views copies one way)"),
}
LAYOUT_DEVIATION = ("the scene starts from the variant's one-state init file; fixtures are placed at reset by "
                    "pokevla's seeded sampler from the variant's BDDL, as at every reset (a saved state holds no fixture pose)")
BACKGROUND_DEVIATION = ("the style's texture replaces the base scene's at reset, resampled to the size of the base "
                        "texture (OpenCV area interpolation); level: pokevla's count of restyled surfaces (floor 1, "
                        "floor and walls 2), the official levels are empirical and not in the wheel")
ROBOT_DEVIATION = ("pokevla also writes these joints into init state 0, so the arm starts there; the official only "
                   "sets init_qpos (the controller's posture target) and set_init_state restores the recorded ~q0")


@dataclass
class Record:
    """One official variant, as a manifest line."""

    suite: str
    name: str
    official: dict
    task_id: int | None = None
    level: int | None = None
    trial: int | None = 0
    instruction: str | None = None
    spec: Perturbation | None = None
    copies: dict[str, str] = field(default_factory=dict)  # destination in DIR -> wheel member
    problem: str | None = None  # why the name or its BDDL could not be read (logged, and in coverage.json)

    @property
    def dimensions(self) -> list[str]:
        return self.official["dimensions"]

    def to_json(self) -> dict:
        if self.spec is not None:  # exactly the line format the manifest reader validates
            return Variant(self.official_id, self.suite, self.task_id, 0, self.trial, self.instruction, self.spec,
                           official=self.official).to_json()
        return {"id": self.official_id, "suite": self.suite, "task_id": self.task_id,
                "dimension": self.dimensions[0] if self.dimensions else None, "level": self.level, "seed": 0,
                "trial": self.trial, "instruction": self.instruction, "params": None, "official": self.official}

    @property
    def official_id(self) -> str:
        return f"liberoplus/{self.suite}/{self.name}"


def _signed(degrees: int) -> int:
    """Angle of the name (mod 360, e.g. 350) as a signed one (-10)."""
    return degrees - 360 if degrees > 180 else degrees


def _clamp_level(value: float) -> int:
    return int(min(5, max(1, math.ceil(value))))


def parse_name(name: str, joints: dict[int, tuple[float, ...]]) -> dict:
    """The base task, dimensions and name-encoded parameters of a variant; ConfigError if not understood.

    Returns {"base", "dimensions", "params" (dimension -> values), "bddl" (the name of the BDDL the
    official env loads, without .bddl), "own_init" (a one-state init file of its own)}."""
    m = NAME.fullmatch(name)
    if not m:
        raise ConfigError("no known suffix (_view_..._initstate_N, _language_, _light_, _table_, _tb_, _add_, _levelL_sampleI)")
    g = m.groupdict()
    base, params = g["base"], {}
    if g["view"] is not None:
        _view_params(g, params, joints)
        if not params:
            raise ConfigError("names no perturbation (default view, init state 0, no noise)")
        bddl = f"{base}_language_{g['language']}" if g["language"] else base
        return {"base": base, "dimensions": [d for d in DIMENSIONS if d in params], "params": params, "bddl": bddl, "own_init": False}
    if g["light"]:
        params["light"] = {"index": int(g["light"])}
    elif g["table"] or g["tb"]:
        params["background"] = {"kind": "table" if g["table"] else "theme", "index": int(g["table"] or g["tb"])}
    elif g["add"]:
        params["layout"] = {"kind": "distractors", "index": int(g["add"])}
    else:
        params["layout"] = {"kind": "shift", "level": int(g["level"]), "sample": int(g["sample"]), "moved": bool(g["moved"])}
    return {"base": base, "dimensions": list(params), "params": params, "bddl": name, "own_init": "layout" in params}


def _view_params(g: dict, params: dict, joints: dict[int, tuple[float, ...]]) -> None:
    """Fills `params` from the groups of a `[_language_K]_view_..._initstate_N[_noise_C]` suffix."""
    if g["language"]:
        params["language"] = {"index": int(g["language"])}
    a, e, s, y, p = (int(v) for v in g["view"].split("_"))
    a, e, y, p = (_signed(v % 360) for v in (a, e, y, p))
    if (a, e, s, y, p) != DEFAULT_VIEW:
        if s <= 0:
            raise ConfigError(f"camera distance {s} % is not positive")
        params["camera"] = {"view": g["view"], "azimuth_deg": a, "elevation_deg": e, "distance_scale": s / 100,
                            "yaw_deg": y, "pitch_deg": p}
    index = int(g["init"])
    if index:
        if index not in joints:
            raise ConfigError(f"init state {index} has no MountedPanda{index} (with an equal OnTheGroundPanda{index}) in the wheel")
        params["robot"] = {"init_index": index, "magnitude_rad": round(0.1 * math.ceil(index / 100), 10),
                           "init_qpos": list(joints[index])}
    if g["noise"] is not None:
        code = int(g["noise"])
        if not 1 <= code <= 50:
            raise ConfigError(f"noise code {code} is not 1-50")
        params["noise"] = {"code": code, "kind": NOISE_KINDS[(code - 1) // 10], "severity": (code - 1) % 10 + 1}


def _camera_spec(c: dict) -> tuple[CameraSpec, int]:
    """The CameraSpec of official camera values and pokevla's level of it (docs/robustness.md)."""
    kinds = [k for k, on in (("orbit", c["azimuth_deg"] or c["elevation_deg"]), ("distance", c["distance_scale"] != 1),
                             ("orientation", c["yaw_deg"] or c["pitch_deg"])) if on]
    kind = kinds[0]
    if kind == "orbit":
        level = _clamp_level(abs(c["azimuth_deg"]) / 15)
    elif kind == "distance":
        level = _clamp_level((round(c["distance_scale"] * 100) - 115) // 17 + 1)  # bands of 0.17 from 1.15
    else:
        level = _clamp_level(max(abs(c["yaw_deg"]), abs(c["pitch_deg"])) / 2)
    spec = CameraSpec(level, kind, azimuth_deg=float(c["azimuth_deg"]), elevation_deg=float(c["elevation_deg"]),
                      distance_scale=c["distance_scale"], yaw_deg=float(c["yaw_deg"]), pitch_deg=float(-c["pitch_deg"]))
    return spec, level


def _robot_spec(r: dict) -> RobotSpec:
    """q = q0 + m u: m the official magnitude, u the unit direction of the wheel's joints from q0."""
    delta = [q - q0 for q, q0 in zip(r["init_qpos"], Q0)]
    norm = math.sqrt(sum(d * d for d in delta))
    if abs(norm - r["magnitude_rad"]) > 1e-6:
        raise ConfigError(f"MountedPanda{r['init_index']} is {norm:.6f} rad from q0, not {r['magnitude_rad']}")
    return RobotSpec(_clamp_level(r["init_index"] / 100), "init_joints", magnitude=r["magnitude_rad"],
                     direction=tuple(d / norm for d in delta))


def official_prompt(name: str, rewrite: str | None) -> str:
    """The instruction the official benchmark gives the policy: the file name's words for every
    non-language variant (the suffix leaks in, e.g. '... plate view 11 15 100 0 0 initstate 0')."""
    if rewrite is not None:
        return rewrite
    if name[0].isupper():  # libero_10: LIVING_ROOM_SCENE2_put_... -> put ...
        start = name.find("SCENE") + (8 if "SCENE10" in name else 7)
        name = name[start:]
    return " ".join(name.split("_"))


class Describer:
    """Turns official variant names into Records, checking every file and asset they need."""

    def __init__(self, wheel: Wheel, installed: Installed):
        self.wheel, self.installed = wheel, installed
        self._bddl: dict[str, Bddl] = {}
        self._assets: dict[str, tuple[list[str], list[str]]] = {}

    def __call__(self, suite: str, name: str) -> Record:
        try:
            parsed = parse_name(name, self.wheel.joints)
        except ConfigError as e:
            return self._rejected(suite, name, f"variant name not understood: {e}")
        official = {"name": name, "base_task": parsed["base"], "dimensions": parsed["dimensions"], "params": parsed["params"],
                    "prompt": None, "files": None, "reproducible": False, "reason": None, "missing_assets": [],
                    "deviations": [], "unsupported": None}
        distractors = parsed["params"].get("layout", {}).get("kind") == "distractors"
        record = Record(suite, name, official, trial=None if distractors else 0)  # a scene's own state is its trial 0
        try:
            self._fill(record, parsed)
        except ConfigError as e:
            return self._rejected(suite, name, str(e), official)
        return record

    def _rejected(self, suite: str, name: str, reason: str, official: dict | None = None) -> Record:
        official = official or {"name": name, "base_task": None, "dimensions": [], "params": {}, "prompt": None,
                                "files": None, "missing_assets": [], "deviations": [], "unsupported": None}
        official.update(reproducible=False, reason=reason)
        return Record(suite, name, official, trial=None, problem=reason)

    def bddl(self, member: str) -> Bddl:
        if member not in self._bddl:
            try:
                self._bddl[member] = read_bddl(self.wheel.read(member).decode("utf-8"))
            except (ConfigError, UnicodeDecodeError) as e:
                raise ConfigError(f"{member}: {e}") from None
        return self._bddl[member]

    def _fill(self, record: Record, parsed: dict) -> None:
        suite, official, params = record.suite, record.official, parsed["params"]
        missing: list[str] = []
        base_member = f"bddl_files/{suite}/{parsed['base']}.bddl"
        bddl_member = f"bddl_files/{suite}/{parsed['bddl']}.bddl"
        init_member = (f"init_files/libero_newobj/{suite}/{record.name}.pruned_init" if parsed["own_init"]
                       else f"init_files/{suite}/{parsed['base']}.pruned_init")
        for member in (base_member, bddl_member, init_member):
            if not self.wheel.has(member):
                missing.append(f"wheel file {ROOT}{member}")
        task = self.installed.tasks.get((suite, parsed["base"]))
        if task is None:
            missing.append(f"base task {parsed['base']} in the installed LIBERO {suite}")
        else:
            record.task_id, record.instruction = task
        if not missing:
            bddl = self.bddl(bddl_member)
            self._details(params, bddl, self.bddl(base_member))
            scene_missing, deviations = self._scene_assets(bddl_member)
            missing += scene_missing
            official["deviations"] += deviations
            if "language" in params:
                params["language"]["length_ratio"] = round(_words(bddl.language) / _words(record.instruction), 3)
                record.instruction = params["language"]["instruction"] = bddl.language
        official["prompt"] = official_prompt(record.name, params.get("language", {}).get("instruction"))
        official["missing_assets"] = missing
        official["reproducible"] = not missing
        official["reason"] = f"missing: {'; '.join(missing)}" if missing else None
        record.level = _level(params, parsed["dimensions"][0])
        if missing:
            return
        record.copies = {f"files/{m}": m for m in (bddl_member, init_member)}
        official["files"] = {"bddl": f"files/{bddl_member}", "init": f"files/{init_member}"}
        self._spec(record, bddl_member, init_member)

    def _details(self, params: dict, bddl: Bddl, base: Bddl) -> None:
        """Parameters that live in the variant's BDDL rather than in its name."""
        if "light" in params or "background" in params:
            scene = self.wheel.scene(bddl.problem)
            details = {"problem": bddl.problem, "scene_xml": scene["scene_xml"]}
            if "background" in params:
                details |= {"floor_style": scene["floor_style"], "wall_style": scene["wall_style"],
                            "floor_texture": self.wheel.styles.get("floor", {}).get(scene["floor_style"]),
                            "wall_texture": self.wheel.styles.get("wall", {}).get(scene["wall_style"])}
            params["light" if "light" in params else "background"] |= details
        layout = params.get("layout")
        if layout and layout["kind"] == "distractors":
            layout["added_objects"] = [
                {"name": n, "category": c, "region": bddl.placements.get(n), "asset": self.wheel.object_assets.get(c)}
                for n, c in bddl.objects.items() if n not in base.objects]
            if not layout["added_objects"]:
                raise ConfigError(f"{bddl.problem}: an _add_ variant whose BDDL adds no object")
        elif layout:
            layout["max_region_shift_m"] = _max_shift(base, bddl)

    def _scene_assets(self, member: str) -> tuple[list[str], list[str]]:
        """(missing assets, name deviations) of the scene, textures and objects a BDDL loads; cached."""
        if member in self._assets:
            return self._assets[member]
        bddl, wheel = self.bddl(member), self.wheel
        scene = wheel.scene(bddl.problem)
        if scene["scene_xml"] is None:
            raise ConfigError(f"{member}: problem class {bddl.problem} is not in the wheel's problems")
        wanted = [scene["scene_xml"]]
        for kind in ("floor", "wall"):
            style = scene[f"{kind}_style"]
            if style is not None:
                if style not in wheel.styles.get(kind, {}):
                    raise ConfigError(f"{member}: {kind} style {style!r} is not in the wheel's {STYLE_FILE}")
                wanted.append(f"textures/{wheel.styles[kind][style]}")
        missing, deviations = [], []
        for category in sorted(set(bddl.objects.values()) - ARENA_FIXTURES):
            if category in wheel.object_assets:  # a LIBERO-Plus object: its mesh XML is named in the wheel
                wanted.append(wheel.object_assets[category])
                continue
            found, renamed = self.installed.object_xml(category)
            if found is None:
                missing.append(f"object {category} (no {category}.xml in the installed assets)")
            elif renamed:
                deviations.append(f"object {category} is installed as {found}")
        for asset in wanted:
            found, renamed = self.installed.find(asset)
            if found is None:
                missing.append(asset)
            elif renamed:
                deviations.append(f"asset {asset} is installed as {found}")
        self._assets[member] = (missing, deviations)
        return missing, deviations

    def _spec(self, record: Record, bddl_member: str, init_member: str) -> None:
        """The pokevla spec that reproduces the variant, or why there is none yet."""
        params, dims = record.official["params"], record.dimensions
        if len(dims) > 1:
            record.official["unsupported"] = UNSUPPORTED["combined"]
        elif dims == ["camera"]:
            record.spec = _camera_spec(params["camera"])[0]
            record.official["deviations"].append(CAMERA_DEVIATION)
        elif dims == ["robot"]:
            record.spec = _robot_spec(params["robot"])
            record.official["deviations"].append(ROBOT_DEVIATION)
        elif dims == ["language"]:
            record.spec = LanguageSpec(record.level, "official", instruction=record.instruction)
            record.official["deviations"].append(LANGUAGE_DEVIATION)
        elif dims == ["noise"]:
            n = params["noise"]
            record.spec = NoiseSpec(record.level, n["kind"], severity=n["severity"])
            record.official["deviations"] += [NOISE_DEVIATION] + ([NOISE_KIND_DEVIATION[n["kind"]]]
                                                                  if n["kind"] in NOISE_KIND_DEVIATION else [])
        elif dims == ["background"]:
            record.spec = self._background_spec(record)
            if record.spec is None:
                record.official["unsupported"] = UNSUPPORTED["background"]
            else:
                record.official["deviations"].append(BACKGROUND_DEVIATION)
        elif dims == ["layout"] and params["layout"]["kind"] == "shift":
            try:
                states = read_init_states(self.wheel.read(init_member))
            except ConfigError as e:
                raise ConfigError(f"{init_member}: {e}") from None
            if len(states) != 1:
                raise ConfigError(f"{init_member}: {len(states)} init states where a layout variant has one")
            record.spec = LayoutSpec(record.level, "scene", bddl_text=self.bddl(bddl_member).text,
                                     sim_state=tuple(states[0]))
            record.official["deviations"].append(LAYOUT_DEVIATION)
        else:
            record.official["unsupported"] = UNSUPPORTED[dims[0]]

    def _background_spec(self, record: Record) -> BackgroundSpec | None:
        """The floor / wall restyling that a background variant of a floor scene is (LIBERO's floor
        arena names its floor and wall textures by style), or None: in tabletop scenes the variants
        load other scene XMLs, and BackgroundSpec's first surface is the table there, not the floor."""
        params = record.official["params"]["background"]
        base_problem = self.bddl(f"bddl_files/{record.suite}/{record.official['base_task']}.bddl").problem
        base = self.wheel.scene(base_problem)
        if base_problem.lower() != FLOOR_PROBLEM or params["scene_xml"] != base["scene_xml"]:
            return None
        styles = {s: params[f"{s}_style"] or base[f"{s}_style"] for s in ("floor", "wall")}
        textures = {s: self._texture(s, style) for s, style in styles.items()}
        restyled = [s for s, style in styles.items() if style != base[f"{s}_style"]]
        wall = textures["wall"] if "wall" in restyled else None
        return BackgroundSpec(max(1, len(restyled)), "theme" if wall else "table", table_texture=textures["floor"],
                              wall_texture=wall)

    def _texture(self, surface: str, style: str) -> str:
        """BackgroundSpec's name of the installed texture of a floor / wall style (a rename is a recorded deviation)."""
        found, _ = self.installed.find(f"textures/{self.wheel.styles[surface][style]}")
        return f"asset:{PurePosixPath(found).stem}"


def _level(params: dict, dimension: str) -> int | None:
    """pokevla's parametric level of an official variant, where its parameters define one."""
    p = params.get(dimension, {})
    if dimension == "camera":
        return _camera_spec(p)[1]
    if dimension == "robot":
        return _clamp_level(p["init_index"] / 100)  # magnitude 0.1 L rad
    if dimension == "noise":
        return _clamp_level(p["severity"] / 2)
    if dimension == "language" and "length_ratio" in p:  # known once the BDDL is read
        # as long as the task's instruction: 1; each half-length more, one level up (5 from three times on)
        return _clamp_level(2 * p["length_ratio"] - 1)
    if dimension == "layout" and p["kind"] == "shift":
        return _clamp_level(p["level"])
    if dimension == "layout" and "added_objects" in p:  # known once the BDDL is read
        return _clamp_level(len(p["added_objects"]))
    return None  # light, background: the official levels are empirical and not in the wheel


def _words(text: str) -> int:
    return max(1, len(text.split()))


def _max_shift(base: Bddl, variant: Bddl) -> float:
    """Largest move (m) of the centre of a region an object starts in, from the base BDDL to a jittered one."""
    before, after = _centres(base.text), _centres(variant.text)
    used = set(variant.placements.values()) & before.keys() & after.keys()
    return round(max((math.dist(before[k], after[k]) for k in used), default=0.0), 4)


@lru_cache(maxsize=64)  # the base BDDLs, met once per jittered variant
def _centres(text: str) -> dict[str, tuple[float, float]]:
    """Region (full name, `<target>_<region>`, lower-case as in placements) -> centre (x, y) in metres."""
    from pokevla.sim.perturb.layout import parse_regions

    return {f"{r['target']}_{k}".lower(): ((r["ranges"][0][0] + r["ranges"][0][2]) / 2, (r["ranges"][0][1] + r["ranges"][0][3]) / 2)
            for k, r in parse_regions(text).items() if r["ranges"]}
