"""LIBERO evaluation with the published protocol, on every core, resumable.

Trial k of a task starts from the task's official init state k (reset, set_init_state, 10 settle
steps: `LiberoEnv.reset`), runs until success or the suite's step limit, and is recorded as one line
of `episodes.jsonl` as soon as it ends. Running the same command again skips the recorded episodes,
so an interrupted evaluation loses at most the episodes in flight. `results.json` is rewritten
atomically from the journal with the per-task table, every setting, the seed and package versions.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from pokevla.common.errors import PokeVLAError
from pokevla.common.io import append_jsonl, read_json, read_jsonl, write_json_atomic
from pokevla.common.versions import machine, package_versions
from pokevla.eval.checkpoints import training_render
from pokevla.eval.episode import play_episode
from pokevla.eval.policy import PolicySpec, make_policy
from pokevla.eval.starts import dataset_starts
from pokevla.eval.video import side_by_side, write_video
from pokevla.scale import LOCAL, Cluster

JOURNAL_KEYS = ("task_id", "trial", "success", "steps")  # what resuming and the summary read of each record
PROTOCOL = "LIBERO published protocol: trial k from official init state k; reset then set_init_state; 10 settle steps; success checked every step"


@dataclass(frozen=True)
class EvalConfig:
    suite: str
    task_ids: tuple[int, ...]
    trials: int = 50
    out: str = "eval"
    resolution: int = 256
    fast_render: bool = False
    workers: int = 1
    videos_per_task: int = 2  # videos of the first N trials of each task; -1 for every episode
    seed: int = 0
    max_steps: int | None = None  # None: the suite's published limit; anything else is a recorded deviation
    starts: str | None = None  # a generated dataset: trial k starts in its k-th episode's scene, not init state k
    cluster: Cluster = LOCAL  # where the episodes run (not part of the evaluation's identity)

    def __post_init__(self) -> None:
        from pokevla.sim import suites

        if self.max_steps is not None and self.max_steps < 1:
            raise PokeVLAError(f"--max-steps must be at least 1, got {self.max_steps}")
        for task_id in self.task_ids:
            if self.starts is None:
                available, what = suites.get_task(self.suite, task_id).num_init_states, "init states"
            else:
                available, what = dataset_starts(self.starts, self.suite).count(task_id), f"episodes in {self.starts}"
            if not 1 <= self.trials <= available:
                raise PokeVLAError(f"{self.suite} task {task_id} has {available} {what}; ask for --trials 1 to {available}")

    @property
    def step_limit(self) -> int:
        from pokevla.sim import suites

        return self.max_steps if self.max_steps is not None else suites.get_suite(self.suite).max_steps


@dataclass(frozen=True)
class EpisodeJob:
    config: EvalConfig
    policy: PolicySpec
    task_id: int
    trial: int


def run_job(job: EpisodeJob) -> dict:
    """Worker: one evaluation episode; writes its video and returns its journal record."""
    from pokevla.sim.env import EnvConfig
    from pokevla.sim.parallel import cached_env

    cfg = job.config
    policy = make_policy(job.policy)
    record_video = cfg.videos_per_task < 0 or job.trial < cfg.videos_per_task
    render = policy.needs_images or record_video
    scene = dict(seed=cfg.seed)
    start = {"trial": job.trial}
    if cfg.starts is not None:  # the demonstration's own scene: its generator's base seed and start noise
        starts = dataset_starts(cfg.starts, cfg.suite)
        scene = dict(seed=starts.base_seed, init_joint_noise=starts.init_joint_noise)
        start = {"seed": starts.seed(job.task_id, job.trial)}
    env = cached_env(EnvConfig(cfg.suite, job.task_id, resolution=cfg.resolution, render=render,
                               fast_render=cfg.fast_render, **scene))
    t0 = time.perf_counter()
    frames: list = []
    outcome = play_episode(env, policy, cfg.step_limit, **start,
                           on_frame=(lambda obs: frames.append(side_by_side(obs))) if record_video else None)
    success = outcome["success"]
    record = {"task_id": job.task_id, "trial": job.trial, **outcome, "seconds": round(time.perf_counter() - t0, 2)}
    if record_video:
        name = f"videos/task{job.task_id:02d}_trial{job.trial:02d}_{'success' if success else 'failure'}.mp4"
        write_video(Path(cfg.out) / name, frames)
        record["video"] = name
    return record


def evaluate(config: EvalConfig, policy: PolicySpec, progress: bool = True) -> dict:
    """Runs (or resumes) the evaluation; returns the results dict also written to results.json."""
    from tqdm import tqdm

    from pokevla.sim.parallel import map_unordered

    if policy.kind == "replay" and config.starts is None:
        raise PokeVLAError("the replay policy plays demonstrations back from their own scenes: add --starts DATASET")
    mismatch = render_mismatch(config, policy)
    if mismatch and progress:
        print(f"warning: {mismatch}; pass --resolution and --fast-render as in training (recorded as a deviation)",
              file=sys.stderr)
    out = Path(config.out)
    identity = {k: v for k, v in asdict(replace(config, workers=0, out="")).items() if k != "cluster"}
    claim_output_dir(out, {"config": {**identity, "task_ids": list(config.task_ids)},
                           "policy": policy.describe()})
    journal = out / "episodes.jsonl"
    recorded = read_jsonl(journal, keys=JOURNAL_KEYS)
    done = {(r["task_id"], r["trial"]) for r in recorded}
    jobs = [EpisodeJob(config, policy, t, k) for t in config.task_ids for k in range(config.trials) if (t, k) not in done]
    bar = tqdm(total=len(config.task_ids) * config.trials, initial=len(done), desc=f"eval {config.suite}", unit="ep", disable=not progress)
    successes = sum(r["success"] for r in recorded)
    t0 = time.perf_counter()
    for record in map_unordered(run_job, jobs, config.workers, config.cluster):
        append_jsonl(journal, record)
        successes += record["success"]
        bar.update(1)
        bar.set_postfix(success=f"{successes}/{bar.n}")
    bar.close()
    results = summarize(config, policy, read_jsonl(journal, keys=JOURNAL_KEYS), wall_seconds=time.perf_counter() - t0, new_episodes=len(jobs))
    write_json_atomic(out / "results.json", results)
    return results


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a success rate: honest at 0 or all successes, unlike p +- 1.96 sd."""
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return max(0.0, centre - half), min(1.0, centre + half)


def summarize(config: EvalConfig, policy: PolicySpec, records: list[dict], wall_seconds: float, new_episodes: int) -> dict:
    from pokevla.sim import suites

    per_task = []
    for task_id in config.task_ids:
        rows = [r for r in records if r["task_id"] == task_id]
        wins = sum(r["success"] for r in rows)
        per_task.append({
            "task_id": task_id, "instruction": suites.get_task(config.suite, task_id).instruction,
            "successes": wins, "trials": len(rows), "success_rate": wins / len(rows) if rows else None,
            "interval95": list(wilson_interval(wins, len(rows))),
            "mean_steps": sum(r["steps"] for r in rows) / len(rows) if rows else None,
        })
    total = sum(t["trials"] for t in per_task)
    wins = sum(t["successes"] for t in per_task)
    return {
        "suite": config.suite, "protocol": PROTOCOL,
        "max_steps": config.step_limit, "settle_steps": suites.SETTLE_STEPS,
        "protocol_deviations": _deviations(config, policy),
        "overall": {"successes": wins, "episodes": total, "success_rate": wins / total if total else None,
                    "interval95": list(wilson_interval(wins, total))},
        "per_task": per_task,
        "settings": {**asdict(config), "render_mode": "fast" if config.fast_render else "stock"},
        "policy": policy.describe(), "versions": package_versions(), "machine": machine(),
        "throughput": {"new_episodes": new_episodes, "wall_seconds": round(wall_seconds, 1),
                       "episodes_per_hour": round(3600 * new_episodes / wall_seconds, 1) if new_episodes and wall_seconds > 0 else None},
        "episodes": sorted(records, key=lambda r: (r["task_id"], r["trial"])),
    }


def _deviations(config: EvalConfig, policy: PolicySpec) -> list[str]:
    """Settings that depart from the published protocol, spelled out in every results file. Render
    settings count only for a policy that sees images (the expert's videos are not its input)."""
    from pokevla.sim import suites

    notes = []
    if config.starts is not None:
        notes.append(f"starts in the scenes of the episodes of {config.starts}, not the official init states")
    if config.trials != suites.NUM_TRIALS:
        notes.append(f"{config.trials} trials per task instead of {suites.NUM_TRIALS}")
    if config.max_steps is not None:
        notes.append(f"max {config.max_steps} steps instead of {suites.get_suite(config.suite).max_steps}")
    if policy.needs_images and config.fast_render:
        notes.append("fast render (no MSAA, no reflections)")
    if policy.needs_images and config.resolution != 256:
        notes.append(f"{config.resolution} px renders instead of 256")
    mismatch = render_mismatch(config, policy)
    return notes + ([mismatch] if mismatch else [])


def render_mismatch(config: EvalConfig, policy: PolicySpec) -> str | None:
    """A checkpoint sees other images than it was trained on (resolution, render mode), or None."""
    trained = training_render(policy.checkpoint) if policy.kind == "checkpoint" else None
    if policy.kind == "server" and policy.served is not None and policy.served[1] is not None:
        trained = {"resolution": policy.served[1], "fast_render": policy.served[2]}
    if trained is None or (trained["resolution"], bool(trained["fast_render"])) == (config.resolution, config.fast_render):
        return None
    return (f"renders differ from the training data's ({_render_name(trained['resolution'], trained['fast_render'])} "
            f"in training, {_render_name(config.resolution, config.fast_render)} here)")


def _render_name(resolution: int, fast: bool) -> str:
    return f"{resolution} px {'fast' if fast else 'stock'} render"


def claim_output_dir(out: Path, claim: dict) -> None:
    """Refuses an output directory that holds a different evaluation (`claim`: its settings and
    policy, JSON-compatible); records ours otherwise, so a rerun with the same flags resumes."""
    from pokevla.common.io import check_writable_dir, hold_dir

    check_writable_dir(out)
    hold_dir(out)
    path = out / "evaluation.json"
    if path.exists():
        existing = read_json(path)
        # a setting added after this evaluation started, left at None, does not make it another one
        for key, value in claim.get("config", {}).items():
            if value is None and isinstance(existing.get("config"), dict):
                existing["config"].setdefault(key, None)
        if existing != claim:
            raise PokeVLAError(f"{out} holds another evaluation ({path}); use a new --out directory or the same flags to resume it")
        return
    if (out / "episodes.jsonl").exists():
        raise PokeVLAError(f"{out} holds episodes of an unknown evaluation; use a new --out directory")
    write_json_atomic(path, claim)


def format_table(results: dict) -> str:
    lines = [f"{results['suite']}  ({results['policy']['kind']}, {results['settings']['trials']} trials per task, max {results['max_steps']} steps)",
             f"{'task':>4}  {'success':>9}  {'rate':>6}  {'steps':>6}  instruction"]
    for t in results["per_task"]:
        rate = f"{100 * t['success_rate']:.0f}%" if t["success_rate"] is not None else "-"
        steps = f"{t['mean_steps']:.0f}" if t["mean_steps"] is not None else "-"
        lines.append(f"{t['task_id']:>4}  {t['successes']:>4}/{t['trials']:<4}  {rate:>6}  {steps:>6}  {t['instruction']}")
    o = results["overall"]
    rate = f"{100 * o['success_rate']:.1f}%" if o["success_rate"] is not None else "-"
    low, high = o["interval95"]
    lines.append(f"{'all':>4}  {o['successes']:>4}/{o['episodes']:<4}  {rate:>6}  (95% Wilson interval {100 * low:.0f}-{100 * high:.0f}%)")
    return "\n".join(lines)
