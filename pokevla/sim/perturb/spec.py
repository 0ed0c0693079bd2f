"""Typed perturbation specs: one frozen dataclass per LIBERO-Plus dimension.

A spec holds every concrete parameter of one variant (nothing is re-drawn at run time except the
per-frame noise of image corruptions, which is seeded), so a manifest line fully describes what the
policy will see. Specs are hashable (tuples, no lists) because `EnvConfig` embeds one and
`cached_env` uses configs as dict keys. `level` is our severity 1-5 (the original's levels are
empirical; ours are parametric, see docs/robustness.md).
"""

from __future__ import annotations

import dataclasses
import numbers
import types
import typing
from dataclasses import dataclass
from typing import ClassVar

from pokevla.common.errors import ConfigError

LEVELS = (1, 2, 3, 4, 5)


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} {value!r} is not one of {', '.join(choices)}")


@dataclass(frozen=True)
class _Spec:
    dimension: ClassVar[str]
    kinds: ClassVar[tuple[str, ...]]
    level: int
    kind: str

    def __post_init__(self):
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):  # a manifest's values fail here, not inside the episode
            value = getattr(self, f.name)
            if not _fits(value, hints[f.name]):
                raise ConfigError(f"{self.dimension} {f.name} {_plain(value)!r} is not {_type_name(hints[f.name])}")
        if self.level not in LEVELS:
            raise ConfigError(f"level {self.level!r} is not one of 1-5")
        _check_choice(f"{self.dimension} kind", self.kind, self.kinds)

    def to_dict(self) -> dict:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}


def _fits(value, tp) -> bool:
    """`value` is of field type `tp` (an int counts as a float, a bool as neither)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if origin is tuple:
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_fits(v, args[0]) for v in value)
        return len(value) == len(args) and all(_fits(v, a) for v, a in zip(value, args))
    return isinstance(value, tp)


def _type_name(tp) -> str:
    """A field type as a manifest writer reads it, e.g. "a list of 3 numbers" (JSON lists are tuples)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    name = _bare_type_name(tp)
    return ("an " if name[0] in "aeiou" else "a ") + name


def _bare_type_name(tp) -> str:
    args = typing.get_args(tp)
    if typing.get_origin(tp) is not tuple:
        return {float: "number", int: "integer", str: "string", bool: "boolean"}[tp]
    if len(args) == 2 and args[1] is Ellipsis:
        return f"list of {_bare_type_name(args[0])}s"
    if len(set(args)) == 1:
        return f"list of {len(args)} {_bare_type_name(args[0])}s"
    return "[" + ", ".join(_bare_type_name(a) for a in args) + "] list"


def _plain(value):
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True)
class CameraSpec(_Spec):
    """Third-person camera: orbit about (0, 0, 0.8), distance scale, then yaw/pitch of the view only."""

    dimension: ClassVar[str] = "camera"
    kinds: ClassVar[tuple[str, ...]] = ("orbit", "distance", "orientation")
    azimuth_deg: float = 0.0  # about world z through the pivot, +-75
    elevation_deg: float = 0.0  # about a y-parallel axis through the pivot, 0 or 15
    distance_scale: float = 1.0  # of the camera-pivot distance, 1.15-2.0
    yaw_deg: float = 0.0  # of the view direction only, +-2..10
    pitch_deg: float = 0.0


@dataclass(frozen=True)
class RobotSpec(_Spec):
    """Initial arm joints q0 + magnitude * direction (direction: unit 7-vector)."""

    dimension: ClassVar[str] = "robot"
    kinds: ClassVar[tuple[str, ...]] = ("init_joints",)
    magnitude: float = 0.1  # radians, 0.1-0.5
    direction: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)

    def __post_init__(self):
        super().__post_init__()
        if len(self.direction) != 7:
            raise ConfigError(f"robot direction must have 7 entries, got {len(self.direction)}")
        norm = sum(d * d for d in self.direction) ** 0.5
        if abs(norm - 1.0) > 1e-6:
            raise ConfigError(f"robot direction must be a unit vector, its norm is {norm:.6f}")


@dataclass(frozen=True)
class LanguageSpec(_Spec):
    """A rewritten instruction; the policy gets `instruction` instead of the task's.

    Kind "official" is a rewrite taken as it is (LIBERO-Plus's own, whose style is not recorded)."""

    dimension: ClassVar[str] = "language"
    kinds: ClassVar[tuple[str, ...]] = ("paraphrase", "context", "commonsense", "reasoning", "combined", "official")
    instruction: str = ""

    def __post_init__(self):
        super().__post_init__()
        if not self.instruction.strip():
            raise ConfigError("a language variant needs a non-empty instruction")


@dataclass(frozen=True)
class LightSpec(_Spec):
    """New values for every scene light (LIBERO scenes have two identical ones)."""

    dimension: ClassVar[str] = "light"
    kinds: ClassVar[tuple[str, ...]] = ("diffuse", "direction", "specular", "shadow")
    diffuse: tuple[float, float, float] = (0.8, 0.8, 0.8)
    direction: tuple[float, float, float] = (0.0, -0.14834045, -0.98893635)
    specular: tuple[float, float, float] = (0.3, 0.3, 0.3)
    castshadow: bool = False


@dataclass(frozen=True)
class BackgroundSpec(_Spec):
    """Table (or floor, in floor scenes) and, for "theme", wall appearance.

    Texture names are "asset:<png stem>" (textures of the installed LIBERO assets) or
    "procedural:<pattern>" (generated from `texture_seed`); rgb multiplies the texture.
    """

    dimension: ClassVar[str] = "background"
    kinds: ClassVar[tuple[str, ...]] = ("table", "theme")
    table_texture: str = ""
    table_rgb: tuple[float, float, float] = (1.0, 1.0, 1.0)
    wall_texture: str | None = None
    wall_rgb: tuple[float, float, float] = (1.0, 1.0, 1.0)
    texture_seed: int = 0


@dataclass(frozen=True)
class NoiseSpec(_Spec):
    """Corruption of the third-person image at severity 1-10 (level = ceil(severity / 2))."""

    dimension: ClassVar[str] = "noise"
    kinds: ClassVar[tuple[str, ...]] = ("motion_blur", "gaussian_blur", "zoom_blur", "fog", "glass_blur")
    severity: int = 1
    seed: int = 0  # per-frame randomness (blur angle, noise, fog map) is drawn from (seed, episode, frame)

    def __post_init__(self):
        super().__post_init__()
        if not 1 <= self.severity <= 10:
            raise ConfigError(f"noise severity {self.severity!r} is not one of 1-10")


@dataclass(frozen=True)
class LayoutSpec(_Spec):
    """Added distractor objects, shifted objects of interest, or a whole scene given as its files.

    distractors: (category, x, y) world positions on the table/floor; the episode starts from a scene
    sampled with `scene_seed` (the added objects change the state size, so no official init state fits).
    shifts: (object name, dx, dy) metres added to the object's position in official init state `trial`.
    scene: the task built from `bddl_text` (its regions moved), started from `sim_state` (a flattened
    MuJoCo state: time, qpos, qvel) as its only init state, trial 0; LIBERO-Plus's jittered layouts.
    scatter: the task built from `bddl_text` (`layout.scattered`: its table regions widened to the whole
    table, `level` distractors added); it has no init states, every episode starts from a sampled scene.
    """

    dimension: ClassVar[str] = "layout"
    kinds: ClassVar[tuple[str, ...]] = ("distractors", "shift", "scene", "scatter")
    distractors: tuple[tuple[str, float, float], ...] = ()
    shifts: tuple[tuple[str, float, float], ...] = ()
    scene_seed: int = 0
    bddl_text: str = ""
    sim_state: tuple[float, ...] = ()

    def __post_init__(self):
        super().__post_init__()
        needs = {"distractors": ("distractors",), "shift": ("shifts",), "scene": ("bddl_text", "sim_state"),
                 "scatter": ("bddl_text",)}[self.kind]
        given = tuple(f for f in ("distractors", "shifts", "bddl_text", "sim_state") if getattr(self, f))
        if given != needs:
            raise ConfigError(f"a {self.kind!r} layout needs {' and '.join(needs)} and nothing else")


SPECS: dict[str, type[_Spec]] = {
    cls.dimension: cls for cls in (CameraSpec, RobotSpec, LanguageSpec, LightSpec, BackgroundSpec, NoiseSpec, LayoutSpec)
}
DIMENSIONS = tuple(SPECS)
Perturbation = CameraSpec | RobotSpec | LanguageSpec | LightSpec | BackgroundSpec | NoiseSpec | LayoutSpec


def reset_kwargs(spec: Perturbation | None, trial: int = 0) -> dict:
    """Arguments of `LiberoEnv.reset` for an episode under `spec`: a distractor or scatter layout starts
    from its own sampled scene (no official init state holds its extra objects), anything else from `trial`."""
    if isinstance(spec, LayoutSpec) and (spec.distractors or spec.kind == "scatter"):
        return {"seed": spec.scene_seed}
    return {"trial": trial}


def spec_from_dict(dimension: str, params: dict) -> Perturbation:
    """Builds the spec of `dimension` from its JSON parameters (lists become tuples)."""
    if dimension not in SPECS:
        raise ConfigError(f"unknown dimension {dimension!r}; choose from {', '.join(DIMENSIONS)}")
    cls = SPECS[dimension]
    if not isinstance(params, dict):
        raise ConfigError(f"{dimension} parameters must be a JSON object")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(params) - names)
    if unknown:
        raise ConfigError(f"unknown {dimension} parameter(s) {', '.join(unknown)}; expected {', '.join(sorted(names))}")
    hints = typing.get_type_hints(cls)
    kwargs = {k: _to_tuple(v) if _is_tuple_type(hints[k]) else v for k, v in params.items()}
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ConfigError(f"{dimension}: {e}") from None


def _is_tuple_type(tp) -> bool:
    """tuple[...] or an optional tuple: JSON lists become tuples for these fields."""
    if typing.get_origin(tp) is tuple:
        return True
    return any(typing.get_origin(a) is tuple for a in typing.get_args(tp))


def _to_tuple(value):
    if isinstance(value, list):
        return tuple(_to_tuple(v) for v in value)
    return value
