"""The LIBERO suites, their tasks and the published evaluation step limits.

The four evaluation suites, plus LIBERO-90: the 90 training tasks of LIBERO's own scenes, which
stage-1 knowledge generation and pre-training use (the benchmarks hold out libero_goal and libero_10).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

from pokevla.common.errors import SimulatorError


@dataclass(frozen=True)
class SuiteSpec:
    name: str
    max_steps: int  # policy steps per episode (after the settle steps), as in OpenVLA-OFT / openpi


SUITES: dict[str, SuiteSpec] = {
    s.name: s
    for s in (
        SuiteSpec("libero_spatial", 220),
        SuiteSpec("libero_object", 280),
        SuiteSpec("libero_goal", 300),
        SuiteSpec("libero_10", 520),
        SuiteSpec("libero_90", 400),  # OpenVLA's LIBERO-90 limit; not part of the published protocol
    )
}

SETTLE_STEPS = 10  # no-op steps after set_init_state so objects come to rest
NUM_TRIALS = 50  # published protocol: trial k starts from init state k
# Per-joint std (rad) of the arm in the official init states: 0.019-0.021 for every joint of all four
# suites (measured over the 500 states of each). Demonstrations start with this spread by default.
OFFICIAL_INIT_JOINT_STD = 0.02


@dataclass(frozen=True)
class TaskInfo:
    suite: str
    task_id: int
    name: str
    instruction: str  # `task.language`, the string the published protocol gives the policy
    bddl_path: str
    num_init_states: int


def get_suite(name: str) -> SuiteSpec:
    if name not in SUITES:
        raise SimulatorError(f"unknown suite {name!r}; choose one of {', '.join(SUITES)}")
    return SUITES[name]


@lru_cache(maxsize=None)
def _benchmark(suite: str):
    get_suite(suite)
    from libero.libero import benchmark

    return benchmark.get_benchmark(suite)()


@lru_cache(maxsize=None)
def list_tasks(suite: str) -> tuple[TaskInfo, ...]:
    """All tasks of a suite, in the official task order."""
    from libero.libero import get_libero_path

    bench = _benchmark(suite)
    bddl_root = get_libero_path("bddl_files")
    tasks = []
    for i in range(bench.n_tasks):
        task = bench.get_task(i)
        tasks.append(
            TaskInfo(
                suite=suite,
                task_id=i,
                name=task.name,
                instruction=task.language,
                bddl_path=os.path.join(bddl_root, task.problem_folder, task.bddl_file),
                num_init_states=len(bench.get_task_init_states(i)),
            )
        )
    return tuple(tasks)


def get_task(suite: str, task_id: int) -> TaskInfo:
    tasks = list_tasks(suite)
    if not 0 <= task_id < len(tasks):
        raise SimulatorError(f"{suite} has tasks 0-{len(tasks) - 1}; task id {task_id} does not exist")
    return tasks[task_id]


def init_states(suite: str, task_id: int):
    """The official init states of a task: float array (num_trials, state_dim)."""
    get_task(suite, task_id)
    return _benchmark(suite).get_task_init_states(task_id)


def parse_task_ids(text: str | None, suite: str) -> list[int]:
    """'0,3,5-7' -> [0, 3, 5, 6, 7]; None -> every task of the suite."""
    n = len(list_tasks(suite))
    if text is None or text.strip() in ("", "all"):
        return list(range(n))
    ids: list[int] = []
    for part in text.split(","):
        part = part.strip()
        try:
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                if lo > hi:
                    raise SimulatorError(f"task range {part!r} is empty; write it low-high, e.g. {hi}-{lo}")
                ids.extend(range(lo, hi + 1))
            else:
                ids.append(int(part))
        except ValueError:
            raise SimulatorError(f"cannot read task list {text!r}; write ids like 0,3,5-7") from None
    for i in ids:
        get_task(suite, i)
    return sorted(set(ids))
