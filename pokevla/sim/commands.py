"""`pokevla sim ...`: list suites and tasks, measure simulator throughput."""

from __future__ import annotations

import argparse
import json


def register(subparsers) -> None:
    sim = subparsers.add_parser("sim", help="LIBERO suites, tasks and simulator speed")
    sub = sim.add_subparsers(dest="sim_command", metavar="SUBCOMMAND", required=True)

    tasks = sub.add_parser("tasks", help="list suites, task ids and instructions")
    tasks.add_argument("--suite", help="one suite (default: all four)")
    tasks.add_argument("--json", action="store_true", help="print JSON instead of a table")
    tasks.set_defaults(func=_tasks)

    bench = sub.add_parser("bench", help="env steps per second for render settings (a benchmark, not a test)")
    bench.add_argument("--suite", default="libero_spatial")
    bench.add_argument("--task", type=int, default=0)
    bench.add_argument("--steps", type=int, default=60)
    bench.add_argument("--resolution", type=int, default=128)
    bench.add_argument("--mode", choices=["none", "rgb", "rgb+depth+seg"], default="rgb")
    bench.add_argument("--fast-render", action="store_true")
    bench.add_argument("--no-hard-reset", action="store_true", help="reset without rebuilding the model")
    bench.add_argument("--json", metavar="FILE", help="append the result as a JSON line")
    bench.set_defaults(func=_bench)


def _tasks(args: argparse.Namespace) -> int:
    from pokevla.sim import suites

    names = [suites.get_suite(args.suite).name] if args.suite else list(suites.SUITES)
    rows = [t for name in names for t in suites.list_tasks(name)]
    if args.json:
        print(json.dumps([{"suite": t.suite, "task_id": t.task_id, "instruction": t.instruction, "init_states": t.num_init_states} for t in rows], indent=2))
        return 0
    for name in names:
        spec = suites.get_suite(name)
        print(f"{name}  (max {spec.max_steps} steps, {suites.NUM_TRIALS} trials per task)")
        for t in suites.list_tasks(name):
            print(f"  {t.task_id:>2}  {t.instruction}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    import time

    import numpy as np

    from pokevla.common.config import require_at_least
    from pokevla.common.io import append_jsonl, check_writable_file
    from pokevla.sim.env import EnvConfig, LiberoEnv

    require_at_least({"--steps": (args.steps, 1), "--resolution": (args.resolution, 1)})
    if args.json:
        check_writable_file(args.json, "--json")
    cfg = EnvConfig(
        suite=args.suite,
        task_id=args.task,
        resolution=args.resolution,
        render=args.mode != "none",
        depth=args.mode == "rgb+depth+seg",
        segmentation=args.mode == "rgb+depth+seg",
        fast_render=args.fast_render,
        hard_reset=not args.no_hard_reset,
    )
    t0 = time.perf_counter()
    env = LiberoEnv(cfg)
    t_create = time.perf_counter() - t0
    resets = []
    for trial in range(2):
        t0 = time.perf_counter()
        env.reset(trial)
        resets.append(time.perf_counter() - t0)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for _ in range(args.steps):
        env.step(np.clip(rng.normal(0, 0.3, 7), -1, 1))
    step_s = (time.perf_counter() - t0) / args.steps
    env.close()
    result = {
        "suite": args.suite, "task": args.task, "mode": args.mode, "resolution": args.resolution,
        "render": "fast" if args.fast_render else "stock", "hard_reset": not args.no_hard_reset,
        "steps_per_s": round(1 / step_s, 2), "ms_per_step": round(1000 * step_s, 1),
        "create_s": round(t_create, 2), "reset_s": round(float(np.median(resets)), 2),
    }
    print(" ".join(f"{k}={v}" for k, v in result.items()))
    if args.json:
        append_jsonl(args.json, result)
    return 0
