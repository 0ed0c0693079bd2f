"""Typed dataclass configs on the command line.

Every field of a (nested) dataclass becomes a flag named by its dotted path with dashes, e.g.
`VLAConfig.vision.dinov2_path` -> `--vision.dinov2-path`. Flags default to "not given", so a named
preset supplies the values and only the flags a user types override it. Configs round-trip through
plain dicts (`to_dict` / `from_dict`) so they can be stored in checkpoints and result files.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, TypeVar

from pokevla.common.errors import ConfigError


def require_at_least(minimums: dict[str, tuple[float, float]]) -> None:
    """flag -> (value, lowest allowed value): the first value below its minimum is a one-line ConfigError."""
    for flag, (value, low) in minimums.items():
        if value < low:
            raise ConfigError(f"{flag} must be at least {low}, got {value}")

T = TypeVar("T")


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def _flag_type(tp: Any):
    tp, optional = _unwrap_optional(tp)
    origin = typing.get_origin(tp)
    if tp is bool:
        return {"type": _parse_bool, "metavar": "BOOL"}
    if tp in (int, float, str):
        return {"type": tp, "metavar": tp.__name__.upper()}
    if origin is tuple:
        elem = typing.get_args(tp)[0]
        return {"type": elem, "nargs": "+", "metavar": elem.__name__.upper()}
    if origin is typing.Literal:
        choices = typing.get_args(tp)
        return {"type": type(choices[0]), "choices": choices}
    raise TypeError(f"unsupported config field type {tp!r}")


def add_dataclass_args(parser: argparse.ArgumentParser, cls: type, prefix: str = "", group: str = "cfg") -> None:
    """Adds one flag per leaf field of dataclass `cls` (recursing into nested dataclasses).

    `group` keeps the parsed values of two configs on one command line apart (see `apply_overrides`).
    """
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        tp = hints[field.name]
        dotted = f"{prefix}{field.name}"
        if dataclasses.is_dataclass(tp):
            add_dataclass_args(parser, tp, prefix=dotted + ".", group=group)
            continue
        kwargs = _flag_type(tp)
        help_text = field.metadata.get("help", "")
        parser.add_argument(
            "--" + dotted.replace("_", "-"),
            dest=f"{group}__" + dotted.replace(".", "__"),
            default=argparse.SUPPRESS,
            help=help_text,
            **kwargs,
        )


def given_flags(args: argparse.Namespace, group: str = "cfg") -> list[str]:
    """The dotted names of the flags of `group` that the user gave."""
    return [key[len(group) + 2 :].replace("__", ".") for key in vars(args) if key.startswith(f"{group}__")]


def apply_overrides(config: T, args: argparse.Namespace, group: str = "cfg") -> T:
    """Returns a copy of `config` with every flag of `group` the user gave applied."""
    prefix = f"{group}__"
    overrides = [
        (key[len(prefix) :].split("__"), value) for key, value in vars(args).items() if key.startswith(prefix)
    ]
    data = to_dict(config)
    for path, value in overrides:
        node = data
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = list(value) if isinstance(value, list) else value
    return from_dict(type(config), data)


def to_dict(config: Any) -> dict:
    """A JSON-ready dict of a dataclass config (tuples become lists)."""
    return dataclasses.asdict(config)


def from_dict(cls: type[T], data: dict, where: str = "config") -> T:
    """Builds dataclass `cls` from a dict; unknown or mistyped keys are a ConfigError."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; expected some of {', '.join(sorted(names))}")
    kwargs = {}
    for field in dataclasses.fields(cls):
        if field.name not in data:
            continue
        tp, _ = _unwrap_optional(hints[field.name])
        value = data[field.name]
        if dataclasses.is_dataclass(tp):
            value = from_dict(tp, value, where=f"{where}.{field.name}")
        elif typing.get_origin(tp) is tuple and value is not None:
            value = tuple(value)
        kwargs[field.name] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: {e}") from None


def format_config(config: Any, indent: int = 0) -> str:
    """Human-readable, nested listing of a config (printed by the CLI before long jobs)."""
    lines = []
    pad = "  " * indent
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if dataclasses.is_dataclass(value):
            lines.append(f"{pad}{field.name}:")
            lines.append(format_config(value, indent + 1))
        else:
            lines.append(f"{pad}{field.name}: {value!r}")
    return "\n".join(lines)
