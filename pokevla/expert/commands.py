"""`pokevla expert`: the scripted expert's success per task, through the evaluation path of models.

The expert runs under the published protocol exactly as a checkpoint would (`pokevla.eval`): same
episodes, same results file, same resume; only physics is simulated unless videos are asked for.
"""

from __future__ import annotations

import argparse

VIDEO_RESOLUTION = 128  # the expert needs no images; videos are for people


def register(subparsers) -> None:
    p = subparsers.add_parser("expert", help="success of the scripted expert per task (published LIBERO protocol)")
    p.add_argument("--suite", required=True, help="libero_spatial | libero_object | libero_goal | libero_10 | libero_90")
    p.add_argument("--tasks", help="task ids, e.g. 0,3,5-7 (default: all)")
    p.add_argument("--trials", type=int, default=50, help="init states 0..N-1 per task (default 50)")
    p.add_argument("--workers", type=int, help="simulator processes (default: all cores)")
    p.add_argument("--render", action="store_true", help="save an mp4 of the first trial of every task")
    p.add_argument("--out", help="results directory, resumable (default: outputs/expert/SUITE-TRIALS-TASKS)")
    p.add_argument("--json", metavar="FILE", help="also write the results (settings, versions, episodes) to FILE")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from pokevla.common.io import check_writable_file, write_json_atomic
    from pokevla.eval.evaluate import EvalConfig, evaluate, format_table
    from pokevla.eval.policy import PolicySpec
    from pokevla.sim import suites
    from pokevla.common.versions import usable_cores

    suites.get_suite(args.suite)
    task_ids = tuple(suites.parse_task_ids(args.tasks, args.suite))
    label = (args.tasks or "all").replace(",", "_")
    config = EvalConfig(
        suite=args.suite, task_ids=task_ids, trials=args.trials,
        out=args.out or f"outputs/expert/{args.suite}-{args.trials}trials-tasks_{label}",
        resolution=VIDEO_RESOLUTION if args.render else 256, workers=args.workers or usable_cores(),
        videos_per_task=1 if args.render else 0,
    )
    if args.json:
        check_writable_file(args.json, "--json")
    results = evaluate(config, PolicySpec("expert"))
    print(format_table(results))
    print(f"results: {config.out}/results.json")
    if args.json:
        write_json_atomic(args.json, results)
    return 0
