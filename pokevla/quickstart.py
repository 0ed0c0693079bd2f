"""`pokevla quickstart`: the whole loop on a small default, in minutes on a laptop-class CPU.

Scripted demonstrations -> train the tiny preset -> evaluate it with the published protocol (fewer
trials) next to the scripted expert -> a markdown report with the success table, a bar chart and a
rollout video. Every stage resumes, so running it again after an interruption continues.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path


def register(subparsers) -> None:
    qs = subparsers.add_parser("quickstart", help="demos -> train tiny -> evaluate -> report, on a small default")
    qs.add_argument("--out", default="outputs/quickstart")
    qs.add_argument("--suite", default="libero_object")
    qs.add_argument("--tasks", default="0", help="task ids (default: 0)")
    qs.add_argument("--episodes-per-task", type=int, default=20)
    qs.add_argument("--steps", type=int, default=1000, help="training steps of the tiny preset")
    qs.add_argument("--batch-size", type=int, default=32)
    qs.add_argument("--trials", type=int, default=10, help="evaluation trials per task (init states 0..N-1)")
    qs.add_argument("--workers", type=int, default=None)
    qs.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pokevla.common.io import check_writable_dir
    from pokevla.data.generate import GenerateConfig, generate_demos
    from pokevla.eval.evaluate import EvalConfig, evaluate, format_table
    from pokevla.eval.policy import PolicySpec
    from pokevla.eval.report import markdown_report, results_table_md, success_bar_chart
    from pokevla.model.config import get_preset
    from pokevla.sim import suites
    from pokevla.common.versions import usable_cores
    from pokevla.train import checkpoints as ckpt
    from pokevla.train.config import TrainConfig
    from pokevla.train.loop import train
    from pokevla.train.runner import loss_summary

    # every stage's configuration is built (and checked) before the first one starts
    workers = args.workers or usable_cores()
    task_ids = tuple(suites.parse_task_ids(args.tasks, args.suite))
    resolution = 128  # the tiny preset's input size; rendering time hardly depends on it
    out, run_dir = Path(args.out), Path(args.out) / "run"
    # DART noise off the expert's path, and starts spread like the official init states (the default)
    demos_cfg = GenerateConfig(args.suite, task_ids, args.episodes_per_task, str(out / "demos"), resolution=resolution,
                               workers=workers, fast_render=True, action_noise=0.2)
    # nothing else runs meanwhile: the training process takes every core (measured 1.6x over one thread)
    train_cfg = TrainConfig(dataset=str(out / "demos"), out=str(run_dir), steps=args.steps, batch_size=args.batch_size,
                            lr=3e-4, save_every=max(100, args.steps // 4), val_episodes=1,
                            val_every=max(100, args.steps // 4), threads=workers)
    eval_cfg = EvalConfig(args.suite, task_ids, trials=args.trials, out=str(out / "eval_model"), resolution=resolution,
                          fast_render=True, workers=workers, videos_per_task=1)
    expert_cfg = dataclasses.replace(eval_cfg, out=str(out / "eval_expert"), videos_per_task=0)
    check_writable_dir(out)
    timings = {}

    t0 = time.perf_counter()
    print(f"[1/4] scripted demonstrations: {args.suite} tasks {list(task_ids)}, {args.episodes_per_task} per task")
    demos = generate_demos(demos_cfg)
    timings["demos"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    done = ckpt.read_run(run_dir) is not None and (ckpt.last_checkpoint(run_dir) or Path()).name == f"step_{args.steps:07d}"
    print(f"[2/4] training the tiny preset for {args.steps} steps" + (" (already done)" if done else ""))
    if not done:
        training = train(train_cfg, get_preset("tiny"), resume=ckpt.read_run(run_dir) is not None)
        print(f"      {loss_summary(training)}, {training['samples_per_s']} samples/s")
    timings["train"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    print(f"[3/4] evaluating the model and the scripted expert: {args.trials} trials per task")
    model_results = evaluate(eval_cfg, PolicySpec("checkpoint", str(ckpt.last_checkpoint(run_dir))))
    expert_results = evaluate(expert_cfg, PolicySpec("expert"))
    timings["eval"] = time.perf_counter() - t0

    print("[4/4] report")
    success_bar_chart(model_results, out / "success.png", reference=expert_results)
    videos = [e["video"] for e in model_results["episodes"] if "video" in e]
    minutes = {k: f"{v / 60:.1f} min" for k, v in timings.items()}
    markdown_report("PokeVLA quickstart", [
        ("Model (tiny preset)", results_table_md(model_results)),
        ("Scripted expert, same trials", results_table_md(expert_results)),
        ("Success", "![success per task](success.png)"),
        ("Rollout", "\n".join(f"- [eval_model/{v}](eval_model/{v})" for v in videos) or "no video"),
        ("Run", f"- demonstrations: {demos['episodes']} episodes, {demos['frames']} frames (`demos/`)\n"
                f"- training run: `run/` (TensorBoard logs in `run/tensorboard`)\n"
                f"- time: " + ", ".join(f"{k} {v}" for k, v in minutes.items())),
    ], out / "report.md")
    print(format_table(model_results))
    print(f"report: {out / 'report.md'}")
    return 0
