"""`pokevla eval`: success rates in LIBERO with the published protocol."""

from __future__ import annotations

import argparse

from pokevla.robustness.commands import add_sample_args
from pokevla.scale import add_cluster_args, cluster_from_args


def register(subparsers) -> None:
    ev = subparsers.add_parser("eval", help="evaluate a checkpoint or the scripted expert in LIBERO (published protocol, resumable)")
    who = ev.add_mutually_exclusive_group(required=True)
    who.add_argument("--checkpoint", help="a training run directory (its last checkpoint) or a checkpoint directory")
    who.add_argument("--server", metavar="URL", help="a checkpoint behind `pokevla serve`, e.g. ws://127.0.0.1:8000")
    who.add_argument("--policy", choices=["expert", "replay"],
                     help="the scripted expert through the same path, or `replay`: the --starts dataset's executed "
                          "actions played back open loop from their own scenes")
    ev.add_argument("--suite", help="libero_spatial | libero_object | libero_goal | libero_10 | libero_90 (with --robustness: "
                                    "only this suite's variants, with --tasks only those tasks)")
    ev.add_argument("--robustness", metavar="MANIFEST", help="one episode per variant of a `pokevla robustness build` manifest")
    ev.add_argument("--tasks", help="task ids, e.g. 0,3,5-7 (default: all)")
    ev.add_argument("--trials", type=int, default=50, help="trials per task, trial k from init state k (default 50, the published protocol)")
    ev.add_argument("--out", required=True, help="results directory (run again with the same flags to resume)")
    ev.add_argument("--workers", type=int, default=None, help="parallel simulator processes (default: all cores; "
                                                              "with --backend ray: the cluster's CPUs)")
    ev.add_argument("--videos", type=int, default=2, help="videos of the first N trials of each task; -1 for all (default 2)")
    ev.add_argument("--replan-steps", type=int, default=None, help="actions executed per predicted chunk (default: the checkpoint's expert.execute_steps, else the whole chunk)")
    ev.add_argument("--temporal-ensemble", type=float, default=None, metavar="DECAY",
                    help="query every step and average the overlapping chunks' actions, weight exp(-DECAY * age rank) "
                         "(ACT's temporal ensembling; default off: --replan-steps actions per chunk)")
    ev.add_argument("--api-key-file", help="with --server: the file holding the server's API key")
    ev.add_argument("--resolution", type=int, default=256, help="render size in px (default 256, the published protocol)")
    ev.add_argument("--fast-render", action="store_true", help="no MSAA / reflections: faster but shifted images (recorded)")
    ev.add_argument("--device", default="cpu")
    ev.add_argument("--max-steps", type=int, default=None, help="override the suite's published step limit (recorded as a deviation)")
    ev.add_argument("--seed", type=int, default=0, help="the env's base seed (and, with --robustness, the --sample draw's)")
    add_sample_args(ev)
    ev.add_argument("--starts", metavar="DATASET",
                    help="start trial k in the scene of the k-th episode of each task in this generated dataset instead "
                         "of init state k (the success ladder: training starts vs evaluation starts; recorded as a deviation)")
    add_cluster_args(ev)
    ev.set_defaults(func=_eval)

    sel = subparsers.add_parser("select", help="choose a run's checkpoint by closed-loop success from held-out scenes "
                                               "(never the official init states), then evaluate that one")
    sel.add_argument("--run", required=True, help="a training run directory; its kept checkpoints are the candidates")
    sel.add_argument("--starts", required=True, metavar="DATASET",
                     help="held-out scenes: a dataset of `pokevla generate demos` with another --seed than the training data's")
    sel.add_argument("--suite", required=True)
    sel.add_argument("--tasks", help="task ids, e.g. 0-2 (default: all)")
    sel.add_argument("--trials", type=int, default=8, help="trials per task and checkpoint, one per --starts episode (default 8)")
    sel.add_argument("--steps", help="candidate steps, e.g. 4000,5000,6000 (default: every kept checkpoint)")
    sel.add_argument("--out", required=True, help="results directory (run again with the same flags to resume)")
    sel.add_argument("--workers", type=int, default=None, help="parallel simulator processes (default: all cores)")
    sel.add_argument("--resolution", type=int, default=256, help="render size in px: the training data's")
    sel.add_argument("--fast-render", action="store_true", help="as the training data, if it was rendered so")
    sel.add_argument("--device", default="cpu")
    sel.add_argument("--seed", type=int, default=0, help="the env's base seed")
    add_cluster_args(sel)
    sel.set_defaults(func=_select)


def _eval(args: argparse.Namespace) -> int:
    from pokevla.common.errors import PokeVLAError
    from pokevla.eval.evaluate import EvalConfig, evaluate, format_table
    from pokevla.eval.policy import PolicySpec
    from pokevla.sim import suites

    _check_numbers(args)
    if args.robustness:
        if args.starts:
            raise PokeVLAError("--starts does not combine with --robustness: a variant defines its own start")
        return _eval_robustness(args)
    for flag, value in (("--sample", args.sample), ("--dimensions", args.dimensions)):
        if value is not None:
            raise PokeVLAError(f"{flag} selects from a manifest: give it with --robustness MANIFEST")
    if not args.suite:
        raise PokeVLAError("--suite is required (or --robustness MANIFEST)")
    suites.get_suite(args.suite)
    policy = _policy(args, args.suite)
    cluster, workers = cluster_from_args(args)
    config = EvalConfig(
        suite=args.suite, task_ids=tuple(suites.parse_task_ids(args.tasks, args.suite)), trials=args.trials,
        out=args.out, resolution=args.resolution, fast_render=args.fast_render,
        workers=workers, videos_per_task=args.videos, seed=args.seed, max_steps=args.max_steps,
        starts=args.starts, cluster=cluster,
    )
    results = evaluate(config, policy)
    print(format_table(results))
    print(f"results: {args.out}/results.json")
    return 0


def _select(args: argparse.Namespace) -> int:
    from pokevla.common.errors import PokeVLAError
    from pokevla.eval.evaluate import EvalConfig
    from pokevla.eval.select import format_selection, select
    from pokevla.sim import suites

    _check_render(args)
    suites.get_suite(args.suite)
    try:
        steps = [int(s) for s in args.steps.split(",")] if args.steps else None
    except ValueError:
        raise PokeVLAError(f"--steps takes comma-separated step numbers, e.g. 4000,5000,6000; got {args.steps!r}") from None
    cluster, workers = cluster_from_args(args)
    config = EvalConfig(suite=args.suite, task_ids=tuple(suites.parse_task_ids(args.tasks, args.suite)), trials=args.trials,
                        out=args.out, resolution=args.resolution, fast_render=args.fast_render, workers=workers,
                        videos_per_task=0, seed=args.seed, starts=args.starts, cluster=cluster)
    selection = select(args.run, config, steps, args.device)
    print(format_selection(selection))
    chosen = selection["selected"]["checkpoint"]
    print(f"selected: {chosen}\nevaluate it with the published protocol: pokevla eval --checkpoint {chosen} "
          f"--suite {args.suite}{' --tasks ' + args.tasks if args.tasks else ''} --resolution {args.resolution}"
          f"{' --fast-render' if args.fast_render else ''} --out DIR")
    print(f"results: {args.out}/selection.json")
    return 0


def _check_numbers(args: argparse.Namespace) -> None:
    from pokevla.common.errors import PokeVLAError

    if args.replan_steps is not None and args.replan_steps < 1:
        raise PokeVLAError(f"--replan-steps must be at least 1, got {args.replan_steps}")
    if args.temporal_ensemble is not None and args.temporal_ensemble < 0:
        raise PokeVLAError(f"--temporal-ensemble takes a decay >= 0, got {args.temporal_ensemble}")
    if args.policy and (args.temporal_ensemble is not None or args.replan_steps is not None):
        raise PokeVLAError("--temporal-ensemble and --replan-steps apply to a model (--checkpoint or --server), "
                           f"not to --policy {args.policy}")
    if args.videos < -1:
        raise PokeVLAError(f"--videos takes a count, or -1 for all; got {args.videos}")
    _check_render(args)


def _check_render(args: argparse.Namespace) -> None:
    """The settings every command that plays a model in the simulator shares."""
    from pokevla.common.errors import PokeVLAError

    if not 32 <= args.resolution <= 1024:
        raise PokeVLAError(f"--resolution {args.resolution} is out of range; use 32-1024 px (the published protocol: 256)")
    if not (args.device == "cpu" or args.device.startswith("cuda")):
        raise PokeVLAError(f"--device {args.device!r}: use cpu, cuda or cuda:N")


def _policy(args: argparse.Namespace, suite: str | None):
    from pokevla.common.errors import PokeVLAError
    from pokevla.eval.policy import PolicySpec

    if args.policy == "expert":
        return PolicySpec("expert")
    if args.policy == "replay":
        if not args.starts:
            raise PokeVLAError("--policy replay plays a dataset back: give the dataset with --starts DATASET")
        return PolicySpec("replay", args.starts)
    if args.server:
        return _served_spec(args)
    from pokevla.eval.checkpoints import resolve_checkpoint

    return PolicySpec("checkpoint", resolve_checkpoint(args.checkpoint, suite), args.replan_steps, args.device,
                      ensemble_decay=args.temporal_ensemble)


def _served_spec(args: argparse.Namespace):
    """The server's policy, after checking that it reads the images this evaluation renders."""
    from pokevla.common.errors import PokeVLAError
    from pokevla.eval.policy import PolicySpec
    from pokevla.serve.client import ConnectError, PolicyClient, read_api_key

    api_key = read_api_key(args.api_key_file) if args.api_key_file else None
    try:
        with PolicyClient(args.server, api_key=api_key, connect_retries=2) as client:
            meta = client.metadata
    except ConnectError as e:
        raise PokeVLAError(f"{e}; start it with: pokevla serve --checkpoint RUN") from None
    shapes = {tuple(v["shape"]) for v in meta["images"].values()}
    if shapes != {(args.resolution, args.resolution, 3)}:
        side = next(iter(shapes))[0]
        raise PokeVLAError(f"the server expects {side}x{side} images; evaluate with --resolution {side}")
    render = meta.get("training_render") or {}
    served = (meta["model"]["weights_sha256"], render.get("resolution"), render.get("fast_render"))
    return PolicySpec("server", args.server, args.replan_steps, ensemble_decay=args.temporal_ensemble,
                      api_key_file=args.api_key_file, served=served)


def _eval_robustness(args: argparse.Namespace) -> int:
    """The LIBERO-Plus-style evaluation: success per dimension, per level and in total."""
    from functools import partial

    from pokevla.common.errors import PokeVLAError
    from pokevla.eval.policy import make_policy
    from pokevla.robustness.commands import dimensions_arg, sample_arg
    from pokevla.robustness.evaluate import EpisodeSettings, evaluate_manifest
    from pokevla.sim import suites
    from pokevla.sim.perturb.manifest import read_manifest

    if args.tasks and not args.suite:
        raise PokeVLAError("--tasks with --robustness needs the tasks' --suite, e.g. --suite libero_object --tasks 0-2")
    tasks = None
    if args.suite:
        suites.get_suite(args.suite)
        tasks = (args.suite, tuple(suites.parse_task_ids(args.tasks, args.suite)))
    variants, _ = read_manifest(args.robustness)
    suites_in_manifest = [args.suite] if args.suite else sorted({v.suite for v in variants})
    policy = _policy(args, suites_in_manifest[0] if len(suites_in_manifest) == 1 else None)
    settings = EpisodeSettings(resolution=args.resolution, fast_render=args.fast_render, seed=args.seed)
    cluster, workers = cluster_from_args(args)
    results = evaluate_manifest(partial(make_policy, policy), args.robustness, workers, args.out,
                                settings=settings, policy_name=str(policy.describe()), cluster=cluster,
                                label=policy.label,
                                sample=sample_arg(args), tasks=tasks, dimensions=dimensions_arg(args))
    print(results["table"])
    print(f"-> {args.out}/results.json")
    return 0
