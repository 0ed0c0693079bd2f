"""`pokevla model info` (parameters per component) and `pokevla model bench` (latency, train step).

torch and transformers are imported inside the handlers so `pokevla --help` stays fast.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys

from pokevla.common.errors import ConfigError


def register(subparsers) -> None:
    from pokevla.model.config import add_config_args

    parser = subparsers.add_parser("model", help="the PokeVLA model: parameter counts, latency benchmark")
    sub = parser.add_subparsers(dest="model_command", metavar="SUBCOMMAND", required=True)

    info = sub.add_parser("info", help="parameters per component (built on the meta device: no memory, no weights)")
    add_config_args(info)
    info.add_argument("--json", action="store_true", help="print JSON instead of a table")
    info.set_defaults(func=run_info)

    bench = sub.add_parser("bench", help="predict_action_chunk latency and training step time on random inputs")
    add_config_args(bench)
    bench.add_argument("--checkpoint", help="benchmark a saved model instead of a randomly initialised preset")
    bench.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    bench.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32",
                       help="bf16: inference with bf16 weights, training under bf16 autocast")
    bench.add_argument("--compile", action="store_true", help="torch.compile the model part of inference")
    bench.add_argument("--batch-size", type=int, default=1)
    bench.add_argument("--image-size", type=int, default=256, help="raw camera resolution (resized by the model)")
    bench.add_argument("--iters", type=int, default=50, help="timed inference calls (the median is reported)")
    bench.add_argument("--warmup", type=int, default=10)
    bench.add_argument("--train-batch-size", type=int, default=8, help="0 skips the training step")
    bench.add_argument("--train-iters", type=int, default=10)
    bench.add_argument("--threads", type=int, help="torch CPU threads")
    bench.add_argument("--json", metavar="FILE", help="also write the results to FILE")
    bench.set_defaults(func=run_bench)


def _has_config_flags(args: argparse.Namespace) -> bool:
    return any(k.startswith("cfg__") for k in vars(args))


def run_info(args: argparse.Namespace) -> int:
    import torch

    from pokevla.model.bench import parameter_counts
    from pokevla.model.config import config_from_args
    from pokevla.model.pokevla import PokeVLA

    config = config_from_args(args)
    with torch.device("meta"):
        model = PokeVLA(config, load_weights=False)
    counts = parameter_counts(model)
    if args.json:
        print(json.dumps({"preset": config.preset, **counts}, indent=2))
        return 0
    print(f"PokeVLA preset {config.preset}: {config.vision.image_size} px, {len(config.views)} views x "
          f"{config.grid ** 2} patches, {config.llm.num_queries} action queries, chunk "
          f"{config.expert.chunk_size} x {config.expert.action_dim}")
    print(f"{'component':<24}{'params':>16}{'LoRA adapters':>16}{'trainable':>16}")
    for name, c in counts["components"].items():
        print(f"{name:<24}{c['params']:>16,}{c['lora']:>16,}{c['trainable']:>16,}")
    paper = config.preset == "1b"  # the preset with the paper's sizes
    print(f"{'inference model':<24}{counts['inference_params']:>16,}"
          + (f"   ({counts['inference_vs_paper_pct']:+.1f}% vs the paper's 1.22B)" if paper else ""))
    print(f"{'+ training-only heads':<24}{counts['total_params']:>16,}"
          + (f"   ({counts['total_vs_paper_pct']:+.1f}% vs the paper's 1.22B)" if paper else ""))
    print("params: unique base weights (tied embeddings once); LoRA adapters are counted apart.")
    return 0


def _machine(device) -> str:
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    return f"{cpu} CPU, {os.cpu_count()} cores, {torch.get_num_threads()} threads"


def run_bench(args: argparse.Namespace) -> int:
    import torch

    from pokevla.common.config import require_at_least
    from pokevla.common.io import check_writable_file
    from pokevla.model.bench import time_inference, time_train_step
    from pokevla.model.config import config_from_args
    from pokevla.model.pokevla import PokeVLA
    from pokevla.model.synthetic import synthetic_stats

    require_at_least({"--batch-size": (args.batch_size, 1), "--image-size": (args.image_size, 1), "--iters": (args.iters, 1),
                      "--warmup": (args.warmup, 0), "--train-batch-size": (args.train_batch_size, 0),
                      "--train-iters": (args.train_iters, 1), "--threads": (1 if args.threads is None else args.threads, 1)})
    try:
        device = torch.device(args.device)
    except RuntimeError:
        raise ConfigError(f"--device {args.device!r}: use cpu, cuda or cuda:N") from None
    if args.json:
        check_writable_file(args.json, "--json")
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {args.device}: no CUDA device is available here")
    if args.checkpoint:
        if _has_config_flags(args):
            raise ConfigError("--checkpoint takes the config from the checkpoint; drop --preset and other config flags")
        model = PokeVLA.from_pretrained(args.checkpoint, training_heads=args.train_batch_size > 0, device=device)
    else:
        config = config_from_args(args)
        with torch.device(device):
            model = PokeVLA(config, synthetic_stats(config))
    bf16 = args.dtype == "bf16"
    label = (f"preset {model.config.preset}, {args.device} ({_machine(device)}), {args.dtype}"
             f"{', compiled' if args.compile else ''}")
    result: dict = {"preset": model.config.preset, "device": args.device, "machine": _machine(device),
                    "dtype": args.dtype, "compile": args.compile, "torch": torch.__version__}
    if args.train_batch_size > 0:
        result["train_step"] = {"batch_size": args.train_batch_size, **time_train_step(
            model, args.train_batch_size, args.image_size, args.train_iters, warmup=2,
            autocast_dtype=torch.bfloat16 if bf16 else None)}
    model.eval()
    if bf16:
        model.to(torch.bfloat16)
    if args.compile:
        model.infer = torch.compile(model.infer)
    result["inference"] = {"batch_size": args.batch_size, "image_size": args.image_size,
                           **time_inference(model, args.batch_size, args.image_size, args.iters, args.warmup)}
    print(f"PokeVLA bench: {label}")
    print(f"{'measurement':<34}{'median ms':>11}{'p90 ms':>9}{'min ms':>9}{'Hz':>9}{'n':>5}")
    rows = [(f"predict_action_chunk, batch {args.batch_size}", result["inference"])]
    if "train_step" in result:
        rows.append((f"train step, batch {args.train_batch_size}", result["train_step"]))
    for name, r in rows:
        print(f"{name:<34}{r['median_ms']:>11.1f}{r['p90_ms']:>9.1f}{r['min_ms']:>9.1f}{r['hz']:>9.2f}{r['n']:>5}")
    if args.json:
        from pokevla.common.io import write_json_atomic

        write_json_atomic(args.json, result)
        print(f"wrote {args.json}", file=sys.stderr)
    return 0
