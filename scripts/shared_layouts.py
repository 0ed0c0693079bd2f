"""Which tasks of one suite reuse the layout of a task of another: the same object and fixture categories
and the same table regions (names and ranges), compared per scene name (KITCHEN_SCENE3, ...).

    python scripts/shared_layouts.py libero_10 libero_90

A held-out suite whose every task shares a training task's layout tests new tasks, not new arrangements.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

from pokevla.sim import suites
from pokevla.sim.perturb import layout


def scene_name(task: suites.TaskInfo) -> str:
    match = re.match(r"([A-Z_]+_SCENE\d+)", Path(task.bddl_path).name)
    return match[1] if match else Path(task.bddl_path).stem


def layout_of(text: str) -> tuple:
    """The categories of everything declared and the ranges of every region placed on the table (floor)."""
    support = layout.support_of(text)
    fixtures = re.search(r"\(:fixtures(.*?)\)", text, re.S)[1]
    categories = Counter(c for _, c in layout.objects_in(text)) + Counter(re.findall(r"-\s*(\w+)", fixtures))
    regions = {name: tuple(r["ranges"]) for name, r in layout.parse_regions(text).items() if r["target"] == support}
    return tuple(sorted(categories.items())), tuple(sorted(regions.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("suite")
    parser.add_argument("training_suite")
    args = parser.parse_args()
    seen: dict[str, set] = {}
    for task in suites.list_tasks(args.training_suite):
        seen.setdefault(scene_name(task), set()).add(layout_of(Path(task.bddl_path).read_text()))
    shared = 0
    for task in suites.list_tasks(args.suite):
        same = layout_of(Path(task.bddl_path).read_text()) in seen.get(scene_name(task), set())
        shared += same
        print(f"{args.suite} task {task.task_id:2d} {scene_name(task):22s} {'same layout' if same else 'new layout'}")
    print(f"{shared} of {len(suites.list_tasks(args.suite))} tasks reuse a layout of {args.training_suite}")


if __name__ == "__main__":
    main()
