"""`pokevla train`: post-train PokeVLA on demonstrations (stage 2 of the method)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    from pokevla.common.config import add_dataclass_args
    from pokevla.model.config import add_config_args
    from pokevla.train.config import TrainConfig

    parser = subparsers.add_parser(
        "train", help="train PokeVLA on a LeRobot v3 dataset (resumable)",
        description="New run: --preset P --dataset DIR --out RUN [flags]. Resume: --out RUN --resume. "
                    "Ablations: --loss.seg-weight 0 and/or --loss.geo-weight 0 switch a loss (and its head) off. "
                    "DDP: torchrun --nproc-per-node N -m pokevla.cli train ...",
    )
    add_dataclass_args(parser, TrainConfig, group="train")
    add_config_args(parser)
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    parser.set_defaults(func=_train)


def _train(args: argparse.Namespace) -> int:
    from pokevla.common.config import apply_overrides, format_config, from_dict, given_flags
    from pokevla.common.errors import ConfigError
    from pokevla.model.config import PokeVLAConfig, config_from_args
    from pokevla.train import checkpoints as ckpt
    from pokevla.train.config import TrainConfig
    from pokevla.train.loop import train

    out = getattr(args, "train__out", None)
    if not out:
        raise ConfigError("--out is required: the run directory")
    run = Path(out)
    existing = ckpt.read_run(run)
    if args.resume:
        extra = [f for f in given_flags(args, "cfg") + given_flags(args, "train") if f != "out"]
        if existing is None:
            raise ConfigError(f"--resume: {run} holds no run (no run.json); start one with --preset and --dataset")
        if extra:
            raise ConfigError(f"--resume continues {run} with its own configuration; drop --{', --'.join(extra)}")
        model_cfg = from_dict(PokeVLAConfig, existing["model"], where=f"{run}/run.json model")
        train_cfg = from_dict(TrainConfig, existing["train"], where=f"{run}/run.json train")
    else:
        if existing is not None:
            raise ConfigError(f"{run} holds another run; continue it with `pokevla train --out {run} --resume` or choose a new --out")
        model_cfg = config_from_args(args)
        train_cfg = apply_overrides(TrainConfig(), args, group="train")
        if not train_cfg.dataset:
            raise ConfigError("--dataset is required for a new run")
    print("model:\n" + format_config(model_cfg, 1))
    print("train:\n" + format_config(train_cfg, 1))
    summary = train(train_cfg, model_cfg, resume=args.resume)
    print(f"step {summary['step']}: loss {summary['final_metrics'].get('loss', float('nan')):.4f} "
          f"(first {summary['first_loss'] if summary['first_loss'] is not None else float('nan'):.4f}), "
          f"{summary['samples_per_s']} samples/s; checkpoint {summary['checkpoint']}")
    return 0
