"""LIBERO-Plus reporting: stratified samples of a manifest, coverage of the official set, the paper's table.

A manifest imported with `pokevla robustness import-official` lists all 10,030 official variants,
runnable here or not. A figure over part of them is only comparable with the paper's when the
reader sees which part: `official_coverage` counts, per suite and dimension, the official variants,
those this installation can run, and `format_paper_table` prints every figure with its episode
count beside the paper's rows and a line of what it covers.
"""

from __future__ import annotations

import json
import random
from collections import Counter, defaultdict
from pathlib import Path

from pokevla.common.errors import ConfigError
from pokevla.sim.perturb import DIMENSIONS
from pokevla.sim.perturb.manifest import Variant

# LIBERO-Plus success % of policies trained on clean LIBERO (PokeVLA paper's table, `DESIGN.md` section 3):
# per dimension, then the episode-weighted Total over the 10,030 variants.
PAPER_ROWS: dict[str, dict[str, float]] = {
    "PokeVLA (paper)": dict(zip((*DIMENSIONS, "total"), (84.7, 46.1, 84.8, 94.6, 82.6, 89.8, 77.2, 79.3))),
    "OpenVLA-OFT": dict(zip((*DIMENSIONS, "total"), (56.4, 31.9, 79.5, 88.7, 93.3, 75.8, 74.2, 69.6))),
    "pi0": dict(zip((*DIMENSIONS, "total"), (13.8, 6.0, 58.8, 85.0, 81.4, 79.0, 68.9, 53.6))),
    "VLA-Adapter": dict(zip((*DIMENSIONS, "total"), (36.2, 37.9, 74.6, 70.6, 76.1, 58.0, 69.7, 59.1))),
}
OFFICIAL_VARIANTS = 10_030


def stratified_sample(variants: list[Variant], n: int, seed: int) -> list[Variant]:
    """`n` variants spread as evenly as possible over the (suite, dimension) cells, drawn with `seed`.

    A cell smaller than its share gives the rest to the others. The same variants, `n` and `seed`
    give the same sample (so a rerun resumes it), and a larger `n` with the same seed keeps every
    variant of a smaller one per cell.
    """
    cells: dict[tuple[str, str], list[Variant]] = defaultdict(list)
    for variant in sorted(variants, key=lambda v: v.id):
        cells[(variant.suite, variant.dimension)].append(variant)
    if n < len(cells):
        raise ConfigError(f"--sample {n} cannot represent the manifest's {len(cells)} (suite, dimension) cells; "
                          f"give at least {len(cells)}")
    for key, members in cells.items():
        random.Random(f"{seed}/{key[0]}/{key[1]}").shuffle(members)
    quota = dict.fromkeys(cells, 0)
    left = min(n, len(variants))
    while left:  # water-filling: one more per open cell in turn until n are placed
        open_cells = [key for key in sorted(cells) if quota[key] < len(cells[key])]
        for key in open_cells[:left]:
            quota[key] += 1
        left -= min(left, len(open_cells))
    return [v for key in sorted(cells) for v in cells[key][:quota[key]]]


def official_coverage(manifest: str | Path) -> dict | None:
    """Official variants in the manifest and those runnable here, in all, per dimension (a combined
    variant in each of its dimensions) and per suite; None when the manifest holds no official line
    (one written by `pokevla robustness build`)."""
    dims, dims_runnable, suites, suites_runnable = Counter(), Counter(), Counter(), Counter()
    for line in Path(manifest).read_text(encoding="utf-8").splitlines():
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            continue  # read_manifest reports it
        if not isinstance(data, dict) or not isinstance(data.get("official"), dict):
            continue
        can_run = data.get("params") is not None
        # a combined variant counts in each of its dimensions; "unparsed" as the import's coverage.json names it
        for dimension in data["official"].get("dimensions") or [data.get("dimension") or "unparsed"]:
            dims[dimension] += 1
            dims_runnable[dimension] += can_run
        suites[str(data.get("suite"))] += 1
        suites_runnable[str(data.get("suite"))] += can_run
    if not suites:
        return None
    return {"variants": sum(suites.values()), "runnable": sum(suites_runnable.values()),
            "per_dimension": {d: {"variants": dims[d], "runnable": dims_runnable[d]} for d in sorted(dims)},
            "per_suite": {s: {"variants": suites[s], "runnable": suites_runnable[s]} for s in sorted(suites)}}


def _cell(row: dict | None) -> str:
    if not row or not row.get("episodes"):
        return "-"
    return f"{100 * row['success_rate']:.1f} ({row['episodes']})"


def format_paper_table(summary: dict, coverage: dict | None, label: str) -> str:
    """Our success per dimension and Total beside the paper's rows, then per suite, then what it covers.

    Our cells read "success % (episodes)"; "-" where nothing of that dimension ran.
    """
    head = f"| policy | {' | '.join(DIMENSIONS)} | total |"
    rule = "|---" * (len(DIMENSIONS) + 2) + "|"
    ours = [_cell(summary["per_dimension"].get(d)) for d in DIMENSIONS] + [_cell(summary["total"])]
    lines = [head, rule, f"| {label} | {' | '.join(ours)} |"]
    for name, row in PAPER_ROWS.items():
        lines.append(f"| {name} | {' | '.join(f'{row[d]:.1f}' for d in DIMENSIONS)} | {row['total']:.1f} |")
    suites = summary.get("per_suite_dimension", {})
    if suites:
        lines += ["", f"| suite | {' | '.join(DIMENSIONS)} | total |", rule]
        for suite, per_dim in suites.items():
            cells = [_cell(per_dim.get(d)) for d in DIMENSIONS] + [_cell(summary["per_suite"][suite])]
            lines.append(f"| {suite} | {' | '.join(cells)} |")
    episodes = summary["total"]["episodes"]
    if coverage is None:
        lines += ["", f"{episodes} episodes of a pokevla-built manifest: its levels are pokevla's own, so the paper's "
                      "rows are a reference, not a like-for-like comparison."]
        return "\n".join(lines)
    per_dim = coverage["per_dimension"]
    parts = [f"{d} {summary['per_dimension'].get(d, {}).get('episodes', 0)}/{per_dim.get(d, {}).get('variants', 0)}"
             for d in DIMENSIONS]
    missing = [d for d in DIMENSIONS if not per_dim.get(d, {}).get("runnable")]
    lines += ["", f"covers {episodes} of the {coverage['variants']:,} official variants "
                  f"({100 * episodes / coverage['variants']:.1f}%; runnable here: {coverage['runnable']:,}); "
                  f"per dimension evaluated/official: {', '.join(parts)}."]
    if missing:
        lines.append(f"not runnable here, so absent from our Total: {', '.join(missing)}; the paper's Total "
                     "weights all seven dimensions.")
    return "\n".join(lines)
