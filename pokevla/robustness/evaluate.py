"""Manifest-driven evaluation: one episode per variant, success per dimension, level and in total.

`evaluate_manifest` is the one implementation behind `pokevla robustness eval` (scripted expert) and
the model evaluation's `--robustness` flag. Episodes are journaled to DIR/episodes.jsonl as they end,
so a rerun of the same command resumes; DIR/results.json (written atomically) holds the summary
(per dimension, per level, the episode-weighted total), every setting, the manifest's bad lines, and
the package versions; DIR/table.md sets the figures beside the paper's LIBERO-Plus rows, with what
they cover of the official set; DIR/robustness.png is a bar chart per dimension and level.

`policy_factory` is a picklable zero-argument callable run inside each worker, returning a policy of
`pokevla.eval.policy`'s protocol: `reset(env)` starts an episode (a model reads `env.instruction`,
which is the variant's instruction), `act(obs)` returns one (7,) action. E.g.
`functools.partial(make_policy, PolicySpec("expert"))`.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pokevla.common.io import append_jsonl, atomic_path, read_jsonl, write_json_atomic, write_text_atomic
from pokevla.robustness.report import format_paper_table, official_coverage, stratified_sample
from pokevla.scale import LOCAL, Cluster
from pokevla.sim.perturb import DIMENSIONS
from pokevla.sim.perturb.manifest import Variant, read_manifest

JOURNAL_KEYS = ("id", "digest", "suite", "dimension", "level")  # what resuming and the summary read of each record
SHOWN_SKIPPED = 5  # an official manifest skips thousands of lines it cannot run here; the rest go to results.json


@dataclass(frozen=True)
class EpisodeSettings:
    resolution: int = 256  # the published protocol; models resize
    views: tuple[str, ...] = ("primary", "wrist")
    render: bool = True
    fast_render: bool = False
    hard_reset: bool = True
    seed: int = 0  # the env's base seed, as in `pokevla eval`


def run_variant(job: tuple[Variant, EpisodeSettings, Callable]) -> dict:
    """Runs one variant's episode in this process (env cached per config); returns its journal record."""
    from pokevla.eval.episode import play_episode
    from pokevla.sim.env import EnvConfig
    from pokevla.sim.parallel import cached_env

    variant, settings, factory = job
    record = {"id": variant.id, "digest": variant.digest, "suite": variant.suite, "task_id": variant.task_id, "dimension": variant.dimension,
              "level": variant.level, "instruction": variant.instruction}
    start = time.perf_counter()
    try:
        env = cached_env(EnvConfig(variant.suite, variant.task_id, resolution=settings.resolution, views=settings.views,
                                   render=settings.render, fast_render=settings.fast_render,
                                   hard_reset=settings.hard_reset, seed=settings.seed, perturbation=variant.spec))
        outcome = play_episode(env, factory(), env.max_steps, **variant.reset_kwargs())
    except Exception as e:  # a broken variant (or policy crash) is recorded and reported; the run goes on
        return record | {"error": f"{type(e).__name__}: {e}", "seconds": round(time.perf_counter() - start, 2)}
    return record | outcome | {"seconds": round(time.perf_counter() - start, 2)}


def summarize(records: list[dict]) -> dict:
    """Success per dimension, per (dimension, level), per suite, per (suite, dimension) and the episode-weighted
    total over finished episodes."""
    done = [r for r in records if "success" in r]

    def rate(rows: list[dict]) -> dict:
        n, k = len(rows), sum(bool(r["success"]) for r in rows)
        return {"episodes": n, "successes": k, "success_rate": round(k / n, 4) if n else None}

    per_dimension = {d: rate([r for r in done if r["dimension"] == d]) for d in DIMENSIONS if any(r["dimension"] == d for r in done)}
    per_level = {
        d: {str(lv): rate([r for r in done if r["dimension"] == d and r["level"] == lv])
            for lv in sorted({r["level"] for r in done if r["dimension"] == d})}
        for d in per_dimension
    }
    suites = sorted({r["suite"] for r in done})
    per_suite = {s: rate([r for r in done if r["suite"] == s]) for s in suites}
    per_suite_dimension = {s: {d: rate([r for r in done if r["suite"] == s and r["dimension"] == d])
                               for d in DIMENSIONS if any(r["suite"] == s and r["dimension"] == d for r in done)}
                           for s in suites}
    return {"total": rate(done), "per_dimension": per_dimension, "per_level": per_level, "per_suite": per_suite,
            "per_suite_dimension": per_suite_dimension,
            "errors": [{"id": r["id"], "error": r["error"]} for r in records if "error" in r]}


def evaluate_manifest(policy_factory: Callable, manifest: str | Path, workers: int, out: str | Path, *,
                      settings: EpisodeSettings = EpisodeSettings(), policy_name: str = "", label: str = "",
                      log: Callable[[str], None] = print, cluster: Cluster = LOCAL,
                      sample: tuple[int, int] | None = None,
                      tasks: tuple[str, tuple[int, ...]] | None = None,
                      dimensions: tuple[str, ...] | None = None) -> dict:
    """Runs every valid variant of `manifest` once (resuming from out/episodes.jsonl); returns results.

    `policy_name` identifies the policy in results.json and the folder's claim; `label` names its row of
    the table (default: the policy name).
    `tasks=(suite, task_ids)` keeps only the variants of those tasks (a policy trained on some tasks is
    evaluated on theirs), `dimensions` those of some dimensions; the official coverage is still counted
    over the whole manifest, so the report says how little of it such a run covers.
    `sample=(n, seed)` runs a stratified sample of n variants instead (every suite and dimension the
    manifest can run represented; `pokevla.robustness.report.stratified_sample`). `out` is claimed
    for these settings, this sample and this policy: a rerun with other ones is refused rather than
    mixed into the same summary (a changed manifest line is re-run, by its digest).
    """
    from pokevla.common.versions import package_versions
    from pokevla.eval.evaluate import claim_output_dir
    from pokevla.sim import render, suites
    from pokevla.sim.parallel import map_unordered

    out = Path(out)
    variants, bad_lines = read_manifest(manifest)
    coverage = official_coverage(manifest)
    runnable = len(variants)
    if tasks is not None:
        variants = select_tasks(variants, *tasks)
    if dimensions is not None:
        variants = select_dimensions(variants, dimensions)
    selected = len(variants)
    if sample is not None:
        variants = stratified_sample(variants, *sample)
    settings_record = {**settings.__dict__, "views": list(settings.views)}
    claim = {"settings": settings_record, "policy": policy_name}
    if tasks is not None:
        claim["tasks"] = {"suite": tasks[0], "task_ids": list(tasks[1])}
    if dimensions is not None:
        claim["dimensions"] = list(dimensions)
    claim_output_dir(out, claim if sample is None else claim | {"sample": list(sample)})
    for message in bad_lines[:SHOWN_SKIPPED]:
        log(f"skipped: {message}")
    if len(bad_lines) > SHOWN_SKIPPED:
        log(f"skipped {len(bad_lines) - SHOWN_SKIPPED} more line(s): all are listed in results.json")
    journal = out / "episodes.jsonl"
    finished = {(r["id"], r["digest"]) for r in read_jsonl(journal, keys=JOURNAL_KEYS)}
    todo = sorted((v for v in variants if (v.id, v.digest) not in finished), key=lambda v: (v.suite, v.task_id, v.dimension))
    log(f"{len(variants)} variants, {len(variants) - len(todo)} already done, {len(todo)} to run on {workers} worker(s)")
    if settings.render:
        render.select_renderer()  # workers inherit the choice
    jobs = [(v, settings, policy_factory) for v in todo]
    for i, record in enumerate(map_unordered(run_variant, jobs, workers, cluster), start=1):
        append_jsonl(journal, record)
        outcome = record.get("error") or ("success" if record["success"] else "failure")
        log(f"[{i}/{len(jobs)}] {record['id']} L{record['level']}: {outcome} ({record['seconds']} s)")
    current = {(v.id, v.digest) for v in variants}
    records = [r for r in read_jsonl(journal, keys=JOURNAL_KEYS) if (r["id"], r["digest"]) in current]
    results = {
        "summary": summarize(records),
        "manifest": {"path": str(manifest), "sha256": hashlib.sha256(Path(manifest).read_bytes()).hexdigest(),
                     "variants": runnable, "skipped_lines": bad_lines, "official_coverage": coverage},
        "sample": None if sample is None else {"n": sample[0], "seed": sample[1], "variants": len(variants)},
        "tasks": None if tasks is None else {"suite": tasks[0], "task_ids": list(tasks[1]), "variants": selected},
        "dimensions": None if dimensions is None else {"names": list(dimensions), "variants": selected},
        "settings": {"policy": policy_name, "workers": workers, "render_mode": "fast" if settings.fast_render else "stock",
                     "max_steps": {s: suites.get_suite(s).max_steps for s in sorted({v.suite for v in variants})},
                     **settings_record},
        "versions": package_versions(),
        "episodes": len(records),
    }
    results["table"] = format_paper_table(results["summary"], coverage, label or policy_name or "ours")
    write_json_atomic(out / "results.json", results)
    write_text_atomic(out / "table.md", results["table"] + "\n")
    plot(results["summary"], out / "robustness.png")
    return results


def select_tasks(variants: list[Variant], suite: str, task_ids: tuple[int, ...]) -> list[Variant]:
    """The variants of `suite`'s tasks `task_ids`; refuses a selection the manifest has nothing of."""
    from pokevla.common.errors import ConfigError

    wanted = set(task_ids)
    chosen = [v for v in variants if v.suite == suite and v.task_id in wanted]
    if not chosen:
        held = sorted({v.suite for v in variants})
        raise ConfigError(f"the manifest has no runnable variant of {suite} task(s) {','.join(map(str, task_ids))} "
                          f"(it holds {', '.join(held) or 'none'}); choose other --suite / --tasks")
    return chosen


def select_dimensions(variants: list[Variant], dimensions: tuple[str, ...]) -> list[Variant]:
    """The variants of `dimensions`; refuses a selection the manifest has nothing of."""
    from pokevla.common.errors import ConfigError

    chosen = [v for v in variants if v.dimension in dimensions]
    if not chosen:
        held = sorted({v.dimension for v in variants})
        raise ConfigError(f"the manifest has no runnable variant of dimension(s) {','.join(dimensions)} "
                          f"(it holds {', '.join(held) or 'none'}); choose other --dimensions")
    return chosen


def plot(summary: dict, path: Path) -> None:
    """Bar chart: success per dimension (left) and per dimension and level (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    dims = list(summary["per_dimension"])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 3.8))
    rates = [100 * (summary["per_dimension"][d]["success_rate"] or 0) for d in dims]
    ax1.bar(dims, rates, color="tab:blue")
    total = summary["total"]["success_rate"]
    if total is not None:
        ax1.axhline(100 * total, color="k", ls="--", lw=1, label=f"total {100 * total:.1f}%")
        ax1.legend(loc="lower right")
    ax1.set_ylim(0, 100)
    ax1.set_ylabel("success %")
    ax1.set_title("per dimension")
    width = 0.16
    for level in range(1, 6):
        vals = [100 * ((summary["per_level"][d].get(str(level)) or {}).get("success_rate") or 0) for d in dims]
        ax2.bar(np.arange(len(dims)) + (level - 3) * width, vals, width, label=f"L{level}")
    ax2.set_xticks(np.arange(len(dims)), dims)
    ax2.set_ylim(0, 100)
    ax2.set_title("per dimension and level")
    ax2.legend(ncol=5, fontsize=8, loc="lower right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)


def expert_factory():
    """Picklable factory of the privileged-state scripted expert (the calibration policy)."""
    from functools import partial

    from pokevla.eval.policy import PolicySpec, make_policy

    return partial(make_policy, PolicySpec("expert"))
