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
                    "From stage 1: --init PRETRAIN_RUN (its encoders, projector, language model and tokenizer). "
                    "Ablations: --loss.seg-weight 0 and/or --loss.geo-weight 0 switch a loss (and its head) off. "
                    "DDP: torchrun --nproc-per-node N -m pokevla.cli train ...",
    )
    add_dataclass_args(parser, TrainConfig, group="train")
    add_config_args(parser)
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    parser.set_defaults(func=_train)


def run_configs(args: argparse.Namespace, command: str, cls: type, data_flags: tuple[str, ...]):
    """(run, model config, stage config) for `pokevla train|pretrain --out RUN [--resume]`, the one rule of
    both stages: a resumed run takes its configurations from its run.json, continuing in the folder it is
    in now (flags other than --out and `data_flags` refused); a new run reads the flags, in an empty --out."""
    from pokevla.common.config import apply_overrides, from_dict, given_flags
    from pokevla.common.errors import ConfigError
    from pokevla.model.config import PokeVLAConfig, config_from_args
    from pokevla.train import checkpoints as ckpt

    out = getattr(args, f"{command}__out", None)
    if not out:
        raise ConfigError("--out is required: the run directory")
    run = Path(out)
    existing = ckpt.read_run(run)
    if not args.resume:
        if existing is not None:
            raise ConfigError(f"{run} holds another run; continue it with `pokevla {command} --out {run} --resume` "
                              f"or choose a new --out")
        return run, config_from_args(args), apply_overrides(cls(), args, group=command)
    if existing is None:
        raise ConfigError(f"--resume: {run} holds no run (no run.json); start one with --preset and --{data_flags[0]}")
    if command not in existing:
        other, stage = ("pretrain", "stage-1") if command == "train" else ("train", "stage-2")
        raise ConfigError(f"--resume: {run} is a {stage} run; continue it with `pokevla {other} --out {run} --resume`")
    extra = [f for f in given_flags(args, "cfg") + given_flags(args, command) if f not in ("out", *data_flags)]
    if extra:
        raise ConfigError(f"--resume continues {run} with its own configuration; drop --{', --'.join(extra)}")
    model_cfg = from_dict(PokeVLAConfig, existing["model"], where=f"{run}/run.json model")
    cfg = from_dict(cls, existing[command], where=f"{run}/run.json {command}")
    return run, model_cfg, dataclasses.replace(cfg, out=str(run))  # a moved run continues where it is now


def _train(args: argparse.Namespace) -> int:
    from pokevla.common.config import format_config
    from pokevla.common.errors import ConfigError
    from pokevla.train import checkpoints as ckpt
    from pokevla.train.config import TrainConfig
    from pokevla.train.loop import train
    from pokevla.train.runner import loss_summary

    run, model_cfg, train_cfg = run_configs(args, "train", TrainConfig, ("dataset",))
    if args.resume:
        # from the dataset named now, if one is
        train_cfg = dataclasses.replace(train_cfg, dataset=getattr(args, "train__dataset", None) or train_cfg.dataset)
        _check_resume_dataset(train_cfg.dataset, ckpt.read_run(run).get("data") or {}, run)
    else:
        if not train_cfg.dataset:
            raise ConfigError("--dataset is required for a new run")
        if train_cfg.init:
            from pokevla.pretrain.transfer import check_init

            check_init(train_cfg.init, model_cfg.preset)  # before the run folder exists
    print("model:\n" + format_config(model_cfg, 1))
    print("train:\n" + format_config(train_cfg, 1))
    summary = train(train_cfg, model_cfg, resume=args.resume)
    print(f"step {summary['step']}: {loss_summary(summary)}, {summary['samples_per_s']} samples/s; "
          f"checkpoint {summary['checkpoint']}")
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
