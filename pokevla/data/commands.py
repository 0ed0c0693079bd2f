"""`pokevla generate demos|knowledge` and `pokevla dataset info|validate|coverage`."""

from __future__ import annotations

import argparse
import json

from pokevla.scale import add_cluster_args, cluster_from_args


def register(subparsers) -> None:
    gen = subparsers.add_parser("generate", help="generate datasets")
    gen_sub = gen.add_subparsers(dest="generate_command", metavar="SUBCOMMAND", required=True)
    demos = gen_sub.add_parser("demos", help="scripted-expert demonstrations as a LeRobot v3 dataset (resumable)")
    demos.add_argument("--suite", required=True, help="libero_spatial | libero_object | libero_goal | libero_10 | libero_90")
    demos.add_argument("--tasks", help="task ids, e.g. 0,3,5-7 (default: all)")
    demos.add_argument("--episodes-per-task", type=int, required=True)
    demos.add_argument("--out", required=True, help="dataset directory (run again with the same flags to resume)")
    demos.add_argument("--resolution", type=int, default=256, help="render size in px (default 256, as the published datasets)")
    demos.add_argument("--workers", type=int, default=None, help="parallel simulator processes (default: all cores)")
    demos.add_argument("--fast-render", action="store_true", help="no MSAA / reflections: faster, slightly different images (recorded)")
    demos.add_argument("--seed", type=int, default=0)
    demos.add_argument("--action-noise", type=float, default=0.0,
                       help="std of correlated noise on the executed translations, in action units; the recorded "
                            "action stays the expert's command (DART). 0.2-0.3 helps small policies recover (default 0)")
    demos.add_argument("--init-joint-noise", type=float, default=None, metavar="RAD",
                       help="std of the Gaussian noise on each arm joint at a scene's start (default 0.02, the spread "
                            "measured in the official init states; 0 starts every episode from one pose)")
    demos.add_argument("--json", metavar="FILE", help="write the run summary as JSON")
    add_cluster_args(demos)
    demos.set_defaults(func=_generate_demos)
    knowledge = gen_sub.add_parser("knowledge", help="world-knowledge VQA / grounding / affordance records from "
                                                     "simulated scenes, for PokeVLM pre-training (resumable)")
    knowledge.add_argument("--suites", required=True, help="suites whose scenes go to train and val, e.g. libero_object,libero_spatial")
    knowledge.add_argument("--heldout-suites", default="", help="suites whose scenes go only to the heldout split, "
                                                                "e.g. libero_goal,libero_10 (default: none)")
    knowledge.add_argument("--out", required=True, help="dataset directory (run again with the same flags to resume)")
    knowledge.add_argument("--samples", type=int, default=10_000, help="records to generate in all splits (default 10000)")
    knowledge.add_argument("--resolution", type=int, default=224, help="render size in px (default 224)")
    knowledge.add_argument("--workers", type=int, default=None, help="parallel simulator processes (default: all cores)")
    knowledge.add_argument("--fast-render", action="store_true", help="no MSAA / reflections: faster, slightly different images (recorded)")
    knowledge.add_argument("--restyle", type=float, default=0.0,
                           help="share of train/val scenes rendered with a random table and wall texture, so that the "
                                "VLM does not learn a suite's look (0-1, default 0; held-out scenes keep theirs)")
    knowledge.add_argument("--move-camera", type=float, default=0.0,
                           help="share of train/val scenes seen from a moved third-person camera (orbit, distance, "
                                "view direction), so that pointing does not learn where objects usually are in the "
                                "image (0-1, default 0; held-out scenes keep the suite's camera)")
    knowledge.add_argument("--scatter", type=float, default=0.0,
                           help="share of train/val scenes whose objects and fixtures stand anywhere on the table, with "
                                "1-3 distractors added, so that an object's place and neighbours do not name it "
                                "(0-1, default 0; held-out scenes keep their layout)")
    knowledge.add_argument("--recompose", type=float, default=0.0,
                           help="share of the scattered scenes that also lose each object or fixture the task does not "
                                "use with probability 1/2 and gain 1-4 objects of any LIBERO-90 category, so that a "
                                "scene's look does not name its objects (0-1, default 0; needs --scatter)")
    knowledge.add_argument("--seed", type=int, default=0)
    add_cluster_args(knowledge)
    knowledge.set_defaults(func=_generate_knowledge)

    ds = subparsers.add_parser("dataset", help="inspect and check LeRobot v3 datasets")
    ds_sub = ds.add_subparsers(dest="dataset_command", metavar="SUBCOMMAND", required=True)
    info = ds_sub.add_parser("info", help="summary of a dataset")
    info.add_argument("root")
    info.add_argument("--json", action="store_true")
    info.set_defaults(func=_info)
    validate = ds_sub.add_parser("validate", help="check that a dataset is whole and consistent")
    validate.add_argument("root")
    validate.add_argument("--all-frames", action="store_true", help="decode every image, not only each episode's ends")
    validate.set_defaults(func=_validate)
    coverage = ds_sub.add_parser(
        "coverage", help="do the episodes' start states cover the official evaluation init states?",
        description="Compares each task's episode start states (arm joints, object xy) with the task's 50 official "
                    "init states and prints one verdict line last. Exit status: 0 covered, 1 not covered, "
                    "2 the dataset cannot be read (e.g. no replay data: only `pokevla generate demos` stores it).")
    coverage.add_argument("root")
    coverage.add_argument("--json", metavar="FILE", help="write the full report (every dimension of every task) as JSON")
    coverage.set_defaults(func=_coverage)


def _generate_demos(args: argparse.Namespace) -> int:
    from pokevla.common.io import check_writable_dir, check_writable_file, write_json_atomic
    from pokevla.data.generate import GenerateConfig, generate_demos
    from pokevla.sim import suites

    suites.get_suite(args.suite)
    cluster, workers = cluster_from_args(args)
    config = GenerateConfig(
        suite=args.suite, task_ids=tuple(suites.parse_task_ids(args.tasks, args.suite)),
        episodes_per_task=args.episodes_per_task, out=args.out, resolution=args.resolution,
        workers=workers, fast_render=args.fast_render, seed=args.seed, action_noise=args.action_noise,
        init_joint_noise=suites.OFFICIAL_INIT_JOINT_STD if args.init_joint_noise is None else args.init_joint_noise,
        cluster=cluster,
    )
    check_writable_dir(args.out)
    if args.json:
        check_writable_file(args.json, "--json")
    summary = generate_demos(config)
    print(f"{summary['episodes']} episodes ({summary['frames']} frames) in {summary['out']}; "
          f"{summary['new_episodes']} new in {summary['seconds']} s"
          + (f" ({summary['episodes_per_minute']} episodes/min, {summary['failed_attempts']} failed attempts)" if summary["new_episodes"] else ""))
    if "warning" in summary:
        print("warning: " + summary["warning"])
    if args.json:
        write_json_atomic(args.json, summary)
    return 0


def _generate_knowledge(args: argparse.Namespace) -> int:
    from pokevla.common.errors import ConfigError
    from pokevla.common.io import check_writable_dir
    from pokevla.pretrain.engine import KnowledgeConfig, generate_knowledge

    def names(flag: str, text: str) -> tuple[str, ...]:
        parts = tuple(p.strip() for p in text.split(",")) if text.strip() else ()
        if any(not p for p in parts):
            raise ConfigError(f"{flag} {text!r} has an empty name; write suites like libero_object,libero_spatial")
        return parts

    cluster, workers = cluster_from_args(args)
    config = KnowledgeConfig(suites=names("--suites", args.suites), heldout_suites=names("--heldout-suites", args.heldout_suites),
                             out=args.out, samples=args.samples, resolution=args.resolution, workers=workers,
                             seed=args.seed, fast_render=args.fast_render, restyle=args.restyle,
                             move_camera=args.move_camera, scatter=args.scatter, recompose=args.recompose,
                             cluster=cluster)
    check_writable_dir(args.out)
    summary = generate_knowledge(config)
    splits = ", ".join(f"{split} {sum(c.values())}" for split, c in summary["splits"].items())
    print(f"{summary['samples']} records ({splits}) from {summary['scenes']} scenes in {summary['out']}; "
          f"{summary['new_samples']} new in {summary['seconds']} s"
          + (f" ({summary['samples_per_hour']} records/hour)" if summary["new_samples"] else ""))
    return 0


def _info(args: argparse.Namespace) -> int:
    from pokevla.data.closing import WAIT_WARN_FRAMES
    from pokevla.data.validate import dataset_info

    info = dataset_info(args.root)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{info['root']}  (LeRobot {info['codebase_version']}, robot {info['robot_type']}, {info['fps']} fps, {info['size_mb']} MB)")
    length = info["episode_length"]
    print(f"  {info['episodes']} episodes, {info['frames']} frames, {info['tasks']} tasks; "
          f"episode length mean {length['mean']:.0f} (min {length['min']}, max {length['max']})")
    if info["generator"]:
        print("  generated with " + ", ".join(f"{k}={v}" for k, v in info["generator"].items()))
    print("  features:")
    for name, spec in info["features"].items():
        print(f"    {name:<34} {spec['dtype']:<8} {spec['shape']}")
    print("  episodes per task:")
    for task, n in info["episodes_per_task"].items():
        print(f"    {n:>4}  {task}")
    if info["closing"]:
        print(f"  still frames before a gripper close (a wait no single frame shows; above {WAIT_WARN_FRAMES:.0f} a policy "
              f"learns to hover): mean {info['closing']['mean_wait_frames']} over {info['closing']['closes']} closes")
        for task, c in info["closing"]["per_task"].items():
            print(f"    {c['mean']:>5} (max {c['max']}, {c['closes']} closes)  {task}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from pokevla.common.errors import DatasetError
    from pokevla.data.validate import validate_dataset

    problems = validate_dataset(args.root, decode_all=args.all_frames)
    if problems:
        for p in problems:
            print(f"problem: {p}")
        raise DatasetError(f"{args.root}: {len(problems)} problem(s), the first: {problems[0]}; regenerate the damaged "
                           "part (re-running `pokevla generate demos` resumes)")
    print(f"{args.root}: OK")
    return 0


def _coverage(args: argparse.Namespace) -> int:
    from pokevla.common.io import write_json_atomic
    from pokevla.data.coverage import coverage_report

    report = coverage_report(args.root)
    for t in report["tasks"]:
        near = "; ".join(f"{group} nearest start median {n['median']:.3f} {n['unit']} "
                         f"({n['reference_median']:.3f} between init states)" for group, n in t["nearest"].items())
        print(f"{t['suite']} task {t['task_id']}: {t['episodes']} episodes, {t['inside']}/{t['init_states']} init states "
              f"inside; {near}")
        for d in t["dims"]:
            if d["inside"] < 1.0:  # the dimensions that decide the verdict; --json has all
                print(f"    {d['name']:<28} data [{d['data'][0]:.3f}, {d['data'][1]:.3f}] vs init "
                      f"[{d['init'][0]:.3f}, {d['init'][1]:.3f}] {d['unit']}: {d['inside']:.0%} inside")
    if args.json:
        write_json_atomic(args.json, report)
    print(report["verdict"])
    return 0 if report["covered"] else 1
