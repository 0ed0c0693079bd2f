"""Demonstration generation: the scripted expert's successful episodes as a LeRobot v3 dataset.

Each attempt first rolls the expert out without rendering (about 10x faster than with cameras);
only successful episodes are then rendered, by restoring the recorded MuJoCo states (and the fixture
placement, which states do not hold) frame by frame, so the images show exactly the executed
trajectory. With `action_noise` the executed translations are perturbed while the recorded
`action` stays the expert's command (DART): the replay data keeps the executed actions. Scenes are fresh samples from the task's BDDL regions (seeded), never the official
evaluation init states. Attempts run on all cores; every finished episode is on disk at once, so an
interrupted run continues where it stopped when the same command is run again.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from pokevla.common.errors import ConfigError, DatasetError, PokeVLAError
from pokevla.common.io import append_jsonl, atomic_path, hold_dir, read_json, read_jsonl
from pokevla.scale import LOCAL, Cluster
from pokevla.common.versions import package_versions
from pokevla.data.features import DEPTH_SCALE, VIEWS, demo_features
from pokevla.data.lerobot import DatasetWriter, encode_png
from pokevla.sim.suites import OFFICIAL_INIT_JOINT_STD

FPS = 20  # LIBERO's control frequency
REPLAY_TOLERANCE = 0.05  # max |state difference| (m, rad) between a restored and a recorded frame
MAX_ATTEMPTS_PER_EPISODE = 3  # give up on a task whose expert success rate is far below 1/3


@dataclass(frozen=True)
class GenerateConfig:
    suite: str
    task_ids: tuple[int, ...]
    episodes_per_task: int
    out: str
    resolution: int = 256
    workers: int = 1
    fast_render: bool = False
    seed: int = 0
    action_noise: float = 0.0  # std of the correlated noise on executed translations (0: the clean expert)
    init_joint_noise: float = OFFICIAL_INIT_JOINT_STD  # std (rad) of each arm joint at a scene's start
    cluster: Cluster = LOCAL  # where the attempts run (local processes or Ray)

    def __post_init__(self) -> None:
        if self.episodes_per_task < 1:
            raise ConfigError(f"--episodes-per-task must be at least 1, got {self.episodes_per_task}")
        if not 32 <= self.resolution <= 1024:
            raise ConfigError(f"--resolution {self.resolution} is out of range; use 32-1024 px (128 or 256 are usual)")
        if not 0.0 <= self.action_noise <= 1.0:
            raise ConfigError(f"--action-noise {self.action_noise} is out of range; use 0 (none) to 1 (action units)")
        if not 0.0 <= self.init_joint_noise <= 0.5:
            raise ConfigError(f"--init-joint-noise {self.init_joint_noise} is out of range; use 0-0.5 rad "
                              "(the official spread is 0.02)")


@dataclass(frozen=True)
class Attempt:
    suite: str
    task_id: int
    seed: int
    resolution: int
    fast_render: bool
    base_seed: int
    action_noise: float
    init_joint_noise: float


def run_attempt(job: Attempt) -> dict:
    """Worker: one expert rollout on a fresh scene; renders and encodes it if it succeeded."""
    from pokevla.expert.rollout import run_episode
    from pokevla.sim.env import EnvConfig
    from pokevla.sim.parallel import cached_env

    physics = cached_env(EnvConfig(job.suite, job.task_id, render=False, seed=job.base_seed,
                                   init_joint_noise=job.init_joint_noise))
    t0 = time.perf_counter()
    rollout = run_episode(physics, seed=job.seed, action_noise=job.action_noise)
    result = {"task_id": job.task_id, "seed": job.seed, "success": rollout.success,
              "num_steps": rollout.num_steps, "rollout_s": time.perf_counter() - t0}
    if not rollout.success:
        return result
    t0 = time.perf_counter()
    camera = cached_env(EnvConfig(job.suite, job.task_id, resolution=job.resolution, depth=True,
                                  segmentation=True, fast_render=job.fast_render, seed=job.base_seed,
                                  init_joint_noise=job.init_joint_noise))
    result["frames"] = render_rollout(camera, rollout)
    result["replay"] = {"sim_states": rollout.sim_states, "actions": rollout.actions,
                        "fixture_poses": rollout.fixture_poses}
    result["render_s"] = time.perf_counter() - t0
    return result


def render_rollout(env, rollout) -> dict[str, list]:
    """Restores each recorded state in a camera env and encodes what the cameras see."""
    env.set_fixture_poses(rollout.fixture_poses)
    frames: dict[str, list] = {"observation.state": [], "action": list(rollout.expert_actions)}
    for t, state in enumerate(rollout.sim_states):
        obs = env.set_sim_state(state)
        # robosuite samples observations inside the last physics substep (2 ms), so a restored state
        # matches the recorded one to a fraction of a millimetre and the images to ~0.2/255 on
        # average; a larger gap means the wrong task or a broken state.
        if np.abs(obs["observation.state"] - rollout.robot_states[t]).max() > REPLAY_TOLERANCE:
            raise PokeVLAError(f"replay of {env.config.suite} task {env.config.task_id} diverged at frame {t}; "
                               "the recorded states do not belong to this scene")
        frames["observation.state"].append(rollout.robot_states[t])
        for view in VIEWS:
            for key, value in _encode_view(obs, view).items():
                frames.setdefault(key, []).append(value)
    return frames


def _encode_view(obs: dict, view: str) -> dict:
    depth_mm = np.clip(np.round(obs[f"observation.depth.{view}"] * DEPTH_SCALE), 0, 65535).astype(np.uint16)
    return {
        f"observation.images.{view}": encode_png(obs[f"observation.images.{view}"]),
        f"observation.masks.{view}": encode_png(obs[f"observation.masks.{view}"]),
        f"observation.depth.{view}": encode_png(depth_mm),
        f"observation.intrinsics.{view}": obs[f"observation.intrinsics.{view}"].reshape(-1),
        f"observation.extrinsics.{view}": obs[f"observation.extrinsics.{view}"].astype(np.float32).reshape(-1),
    }


def generate_demos(config: GenerateConfig, progress: bool = True) -> dict:
    """Generates (or resumes) the dataset; returns a summary with throughput figures."""
    from tqdm import tqdm

    from pokevla.sim import suites
    from pokevla.sim.parallel import map_unordered

    tasks = {t: suites.get_task(config.suite, t) for t in config.task_ids}
    root = Path(config.out)
    settings = {"suite": config.suite, "resolution": config.resolution, "fast_render": config.fast_render,
                "seed": config.seed, "fps": FPS, "action_noise": config.action_noise,
                "init_joint_noise": config.init_joint_noise}
    _check_same_settings(root, settings)
    hold_dir(root)
    writer = DatasetWriter(root, demo_features(config.resolution), fps=FPS, robot_type="panda",
                           extra_info={"pokevla": {"generator": settings, "versions": package_versions(),
                                                   "scenes": "fresh samples of the BDDL regions (not the evaluation init states)"}})
    journal = root / "meta/pokevla_attempts.jsonl"
    attempted = {t: set() for t in tasks}
    for record in read_jsonl(journal, keys=("task_id", "seed")):
        attempted.setdefault(record["task_id"], set()).add(record["seed"])
    done = {t: 0 for t in tasks}
    for e in writer.episodes:
        if e.extra.get("task_id") in done:
            done[e.extra["task_id"]] += 1
            attempted[e.extra["task_id"]].add(e.extra["seed"])

    needed = sum(max(0, config.episodes_per_task - n) for n in done.values())
    bar = tqdm(total=needed, desc=f"demos {config.suite}", unit="ep", disable=not progress)
    t_start, new_episodes, failures = time.perf_counter(), 0, 0
    while True:
        # A round offers each unfinished task as many attempts as its success rate so far says it needs:
        # a worker pool runs every job it is given, so an attempt queued for a task that is then complete
        # would be wasted. Failures are made up in the next round. Jobs stay sorted by task, which lets a
        # worker reuse its environment.
        jobs = []
        for t in tasks:
            deficit = config.episodes_per_task - done[t]
            budget = MAX_ATTEMPTS_PER_EPISODE * config.episodes_per_task - len(attempted[t])
            if deficit <= 0 or budget <= 0:
                continue
            success_rate = done[t] / len(attempted[t]) if attempted[t] else 1.0
            count = min(budget, math.ceil(deficit / max(success_rate, 1 / MAX_ATTEMPTS_PER_EPISODE)))
            next_seed = max(attempted[t], default=-1) + 1
            jobs += [Attempt(config.suite, t, next_seed + i, config.resolution, config.fast_render, config.seed,
                             config.action_noise, config.init_joint_noise) for i in range(count)]
        if not jobs:
            break
        with contextlib.closing(map_unordered(run_attempt, jobs, config.workers, config.cluster)) as results:
            for result in results:
                t = result["task_id"]
                attempted[t].add(result["seed"])
                if result["success"] and done[t] < config.episodes_per_task:
                    _write_episode(writer, root, tasks[t], result)
                    done[t] += 1
                    new_episodes += 1
                    bar.update(1)
                elif not result["success"]:
                    failures += 1
                append_jsonl(journal, {k: result[k] for k in ("task_id", "seed", "success", "num_steps")})
                bar.set_postfix(failed=failures)
                if all(n >= config.episodes_per_task for n in done.values()):
                    break
    bar.close()
    elapsed = time.perf_counter() - t_start
    short = {t: n for t, n in done.items() if n < config.episodes_per_task}
    summary = {
        "out": str(root), "episodes": len(writer.episodes), "frames": sum(e.length for e in writer.episodes),
        "new_episodes": new_episodes, "failed_attempts": failures, "seconds": round(elapsed, 1),
        "episodes_per_minute": round(60 * new_episodes / elapsed, 2) if new_episodes else None,
        "short_tasks": short, "config": asdict(config),
    }
    if short:
        summary["warning"] = (f"the expert fell short on task(s) {sorted(short)} after {MAX_ATTEMPTS_PER_EPISODE}x attempts; "
                              "those tasks have fewer episodes")
    return summary


def _write_episode(writer: DatasetWriter, root: Path, task, result: dict) -> None:
    index = len(writer.episodes)
    replay = result["replay"]
    with atomic_path(root / f"meta/replay/episode_{index:06d}.npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, sim_states=replay["sim_states"], actions=replay["actions"],
                                fixture_poses=np.array(json.dumps(replay["fixture_poses"])),
                                suite=np.array(task.suite), task_id=np.array(task.task_id), seed=np.array(result["seed"]))
    writer.add_episode(result["frames"], task=task.instruction,
                       extra={"suite": task.suite, "task_id": task.task_id, "seed": result["seed"]})


def _check_same_settings(root: Path, settings: dict) -> None:
    info_path = root / "meta/info.json"
    if not info_path.exists():
        if root.exists() and any(root.iterdir()) and not (root / "meta").exists():
            raise DatasetError(f"{root} is not empty and holds no dataset; choose a new --out directory")
        return
    stored = read_json(info_path, DatasetError).get("pokevla", {}).get("generator")
    if isinstance(stored, dict):
        stored.setdefault("action_noise", 0.0)  # datasets written before these flags existed
        stored.setdefault("init_joint_noise", 0.0)
    if stored != settings:
        raise DatasetError(f"{root} was generated with {stored}; this run asks for {settings}. Use another --out directory")
