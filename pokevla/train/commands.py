"""`pokevla train`: post-train PokeVLA on demonstrations (stage 2 of the method)."""

from __future__ import annotations

import argparse
import dataclasses
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
        extra = [f for f in given_flags(args, "cfg") + given_flags(args, "train") if f not in ("out", "dataset")]
        if existing is None:
            raise ConfigError(f"--resume: {run} holds no run (no run.json); start one with --preset and --dataset")
        if extra:
            raise ConfigError(f"--resume continues {run} with its own configuration; drop --{', --'.join(extra)}")
        model_cfg = from_dict(PokeVLAConfig, existing["model"], where=f"{run}/run.json model")
        train_cfg = from_dict(TrainConfig, existing["train"], where=f"{run}/run.json train")
        # a run folder locates itself: it continues where it is now, from the dataset named now if one is
        train_cfg = dataclasses.replace(train_cfg, out=str(run), dataset=getattr(args, "train__dataset", None) or train_cfg.dataset)
        _check_resume_dataset(train_cfg.dataset, existing.get("data") or {}, run)
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


def _check_resume_dataset(dataset: str, recorded: dict, run: Path) -> None:
    """The dataset a resumed run reads must exist and be the one it started on (episodes, frames, tasks)."""
    from pokevla.common.errors import ConfigError
    from pokevla.data.reader import DatasetReader
    from pokevla.train.loop import dataset_identity

    if not (Path(dataset) / "meta/info.json").is_file():
        raise ConfigError(f"--resume: the run's dataset {dataset} is not there; name where it is now with --dataset DIR")
    now = dataset_identity(DatasetReader(dataset))
    changed = [k for k in ("episodes", "frames", "tasks") if k in recorded and recorded[k] != now[k]]
    if changed:
        raise ConfigError(f"--resume: {dataset} is not the dataset {run} was trained on ({', '.join(changed)} differ)")
