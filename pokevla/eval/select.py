"""`pokevla select`: a run's checkpoint chosen by closed-loop success on held-out scenes.

Open-loop error ranks checkpoints badly (on object3 the run with the lowest held-out arm error had
the lowest success), and LIBERO's baselines pick their checkpoint by rollouts. Picking by rollouts
from the official init states would tune on the test set, so selection plays each candidate from the
starts of a separately generated dataset: `pokevla generate demos --seed S` with another seed than the
training data's gives fresh scenes that are neither training scenes nor init states. Each candidate
is an ordinary `pokevla eval --starts` in OUT/<checkpoint>, so an interrupted selection resumes, and
the chosen checkpoint is then evaluated once with the published protocol.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from pokevla.common.errors import PokeVLAError
from pokevla.common.io import write_json_atomic
from pokevla.common.versions import machine, package_versions
from pokevla.eval.evaluate import EvalConfig, evaluate, wilson_interval
from pokevla.eval.policy import PolicySpec

RULE = ("the candidate with the most successes from the held-out starts; a tie goes to the later step "
        "(the default rule's choice, the end of the schedule)")


@dataclass(frozen=True)
class Candidate:
    step: int
    checkpoint: Path  # the model folder


def candidates(run: str | Path, steps: list[int] | None) -> list[Candidate]:
    """The run's complete checkpoints (or those of `steps`), oldest first."""
    from pokevla.train.checkpoints import checkpoints_dir

    # a model folder is enough to evaluate: a candidate need not keep its trainer state
    kept = {int(p.name.removeprefix("step_")): p for p in sorted(checkpoints_dir(Path(run)).glob("step_*"))
            if (p / "config.json").is_file() and (p / "model.safetensors").is_file()}
    if not kept:
        raise PokeVLAError(f"{run} holds no complete checkpoint; give a training run directory (pokevla train --out)")
    if steps is None:
        return [Candidate(s, kept[s]) for s in sorted(kept)]
    missing = sorted(set(steps) - set(kept))
    if missing:
        raise PokeVLAError(f"{run} keeps no checkpoint of step(s) {', '.join(map(str, missing))}; it keeps steps "
                           f"{', '.join(map(str, sorted(kept)))} (train with --keep-checkpoints N to keep more)")
    return [Candidate(s, kept[s]) for s in sorted(set(steps))]


def check_held_out(run: str | Path, starts: str) -> None:
    """Refuses selection starts that are the training scenes: the same dataset, or one generated with
    the training data's suite and seed (its scenes repeat the training episodes')."""
    from pokevla.data.reader import DatasetReader
    from pokevla.train.checkpoints import read_run

    trained_on = (read_run(Path(run)) or {}).get("data", {}).get("dataset")
    if trained_on is None:
        return
    if Path(trained_on).resolve() == Path(starts).resolve():
        raise PokeVLAError(f"{starts} is the run's training dataset; selection needs unseen scenes: generate them with "
                           f"`pokevla generate demos ... --seed N` (N other than the training data's) and pass that")
    if not Path(trained_on).is_dir():
        return  # the training data is elsewhere: the scene seeds cannot be compared here
    train_gen = DatasetReader(trained_on).info.get("pokevla", {}).get("generator") or {}
    held_gen = DatasetReader(starts).info.get("pokevla", {}).get("generator") or {}
    same = ("suite", "seed", "init_joint_noise")
    if train_gen and all(train_gen.get(k) == held_gen.get(k) for k in same):
        raise PokeVLAError(f"{starts} was generated with the training data's --seed {train_gen.get('seed')}, so its scenes "
                           f"are training scenes; regenerate it with another --seed")


def select(run: str | Path, config: EvalConfig, steps: list[int] | None = None, device: str = "cpu",
           progress: bool = True) -> dict:
    """Evaluates every candidate from `config.starts` (resumable, one folder each under `config.out`),
    writes `config.out/selection.json` and returns it."""
    if config.starts is None:
        raise PokeVLAError("selection plays checkpoints from held-out scenes: give them with --starts DATASET")
    from pokevla.eval.checkpoints import resolve_checkpoint

    resolve_checkpoint(str(run), config.suite)  # refuses a run trained on another suite
    check_held_out(run, config.starts)
    chosen = candidates(run, steps)
    rows = []
    for candidate in chosen:
        if progress:
            print(f"checkpoint step {candidate.step}")
        results = evaluate(replace(config, out=str(Path(config.out) / candidate.checkpoint.name)),
                           PolicySpec("checkpoint", str(candidate.checkpoint), device=device), progress=progress)
        wins, episodes = results["overall"]["successes"], results["overall"]["episodes"]
        rows.append({"step": candidate.step, "checkpoint": str(candidate.checkpoint), "successes": wins,
                     "episodes": episodes, "success_rate": wins / episodes,
                     "interval95": list(wilson_interval(wins, episodes)),
                     "per_task": {str(t["task_id"]): t["successes"] for t in results["per_task"]}})
    best = max(rows, key=lambda r: (r["successes"], r["step"]))
    selection = {"run": str(run), "rule": RULE, "starts": config.starts, "suite": config.suite,
                 "task_ids": list(config.task_ids), "trials_per_task": config.trials,
                 "settings": {"resolution": config.resolution, "fast_render": config.fast_render, "seed": config.seed,
                              "max_steps": config.max_steps, "device": device},
                 "candidates": rows, "selected": {"step": best["step"], "checkpoint": best["checkpoint"]},
                 "versions": package_versions(), "machine": machine()}
    write_json_atomic(Path(config.out) / "selection.json", selection)
    return selection


def format_selection(selection: dict) -> str:
    tasks = selection["task_ids"]
    lines = [f"{'step':>7}  {'success':>9}  {'95% interval':>12}  " + "  ".join(f"task {t}" for t in tasks)]
    for r in selection["candidates"]:
        low, high = r["interval95"]
        mark = "  <- selected" if r["step"] == selection["selected"]["step"] else ""
        lines.append(f"{r['step']:>7}  {r['successes']:>4}/{r['episodes']:<4}  {100 * low:>5.0f}-{100 * high:.0f}%  "
                     + "  ".join(f"{r['per_task'][str(t)]:>6}" for t in tasks) + mark)
    return "\n".join(lines)
