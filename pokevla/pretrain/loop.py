"""Stage 1: pre-training PokeVLM on world-knowledge conversations, through the shared loop of
`pokevla.train.runner` (the same optimiser, schedule, checkpoints, resume and DDP as stage 2).

    RUN/run.json                  model and pretrain configs, the sources, versions
    RUN/checkpoints/step_N/       a PokeVLM folder (`PokeVLM.from_pretrained`) + trainer.pt
    RUN/val.jsonl                 the held-out loss on the sources' val split, every --val-every steps

`pokevla pretrain --out RUN --resume` continues from the last checkpoint with the same data order;
`--init EARLIER_RUN` starts a new run (new optimiser and schedule) from another run's weights.
"""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path
from typing import Iterator

import torch

from pokevla.common.config import to_dict
from pokevla.common.versions import machine, package_versions
from pokevla.model.config import PokeVLAConfig
from pokevla.pretrain.augment import Augment
from pokevla.pretrain.config import PretrainConfig
from pokevla.pretrain.data import (ConversationDataset, LengthGroupedSampler, held_out_batches, held_out_sources,
                                   open_sources)
from pokevla.pretrain.vlm import PokeVLM
from pokevla.train import checkpoints as ckpt
from pokevla.train import runner


@torch.no_grad()
def held_out_loss(model: PokeVLM, dataset: ConversationDataset, batch_size: int) -> dict[str, float]:
    """The answer-token cross-entropy over the whole held-out set (each answer token weighs the same)."""
    was_training = model.training
    model.eval()
    total, tokens = 0.0, 0.0
    for batch in held_out_batches(dataset, batch_size):
        loss, parts = model(batch)
        total += loss.item() * parts["answer_tokens"]
        tokens += parts["answer_tokens"]
    model.train(was_training)
    return {"val/loss": total / tokens}


class KnowledgeStage:
    """Stage 1 for the shared loop: PokeVLM on conversation records.

    With `pretrain.init` a new run starts from the weights, backbones and tokenizer of an earlier
    stage-1 checkpoint (its adapters merged; this run's `train` choice applies from there); a resumed
    run rebuilds from its own last checkpoint and never reads that folder again.
    """

    name = "pretrain"

    def __init__(self, cfg: PretrainConfig, model_cfg: PokeVLAConfig, init: dict | None = None):
        self.cfg, self.model_cfg, self.init = cfg, model_cfg, init
        self.sources = open_sources(cfg.data, cfg.mix)
        self.val_sources = held_out_sources(self.sources)
        self.dataset: ConversationDataset | None = None
        self.val_set: ConversationDataset | None = None

    def build(self, last: Path | None, device: torch.device) -> PokeVLM:
        torch.manual_seed(self.cfg.seed)
        if self.cfg.init:
            model = self._build_from_stage1(last)
        else:
            model = PokeVLM(self.model_cfg, self.cfg.train)
        # the data is tokenised with the model's own chat format and sized to its context
        c = model.config
        augment = Augment(self.cfg.augment_crop, self.cfg.augment_color)
        self.dataset = ConversationDataset([s for s, _ in self.sources], model.chat, c.vision.image_size, c.llm.max_length,
                                           augment=augment, name_patches=c.grid if self.cfg.patch_names else 0)
        if self.dataset.names is not None:  # the head's classes are the names the data holds
            model.add_patch_head(self.dataset.names.names)
            model.patch_weight = self.cfg.patch_names
        if last is not None:
            model.load_checkpoint(last)
        if self.val_sources:
            self.val_set = ConversationDataset(self.val_sources, model.chat, c.vision.image_size, c.llm.max_length,
                                               limit=self.cfg.val_records)
        if self.dataset.skipped:
            print(self.dataset.skip_summary("training"), file=sys.stderr)
        return model.to(device)

    def _build_from_stage1(self, last: Path | None) -> PokeVLM:
        from pokevla.pretrain import transfer

        def make(config, backbones, tokenizer) -> PokeVLM:
            return PokeVLM(config, self.cfg.train, backbones=backbones, load_weights=False, tokenizer=tokenizer)

        model, self.model_cfg, started = transfer.build_on_stage1(self.cfg.init, last, self.model_cfg, make)
        self.init = started or self.init
        return model

    def run_info(self, world: int) -> dict:
        data = {"sources": [{"path": str(s.path), "format": s.format, "weight": w, "records": n}
                            for (s, w), n in zip(self.sources, self.dataset.sizes)],
                "skipped": self.dataset.skipped, "val": [str(s.path) for s in self.val_sources]}
        info = {"stage": 1, "model": to_dict(self.model_cfg), "pretrain": asdict(self.cfg), "data": data,
                "versions": package_versions(), "machine": machine(), "world_size": world}
        return info if self.init is None else {**info, "init": self.init}

    def batches(self, start: int, rank: int, world: int) -> Iterator[dict]:
        cfg, data = self.cfg, self.dataset
        sampler = LengthGroupedSampler(data.lengths, data.image_counts, cfg.batch_size * cfg.grad_accum * world,
                                       cfg.seed, start=start, rank=rank, world_size=world,
                                       sizes=data.sizes, weights=[w for _, w in self.sources])
        loader = torch.utils.data.DataLoader(data, batch_size=cfg.batch_size, sampler=sampler, collate_fn=data.collate,
                                             num_workers=cfg.loader_workers, persistent_workers=cfg.loader_workers > 0)
        return iter(loader)

    def postfix(self, metrics: dict[str, float]) -> dict[str, str]:
        shown = {"loss": f"{metrics['loss']:.4f}"}
        return {**shown, "patch": f"{metrics['patch_loss']:.3f}"} if "patch_loss" in metrics else shown

    def after_save(self, saved: Path, step: int) -> None:
        """A stage-1 checkpoint is the model folder and the trainer state: nothing to add."""

    def validate(self, model: PokeVLM) -> dict[str, float] | None:
        return None if self.val_set is None else held_out_loss(model, self.val_set, self.cfg.batch_size)

    def val_line(self, step: int, metrics: dict[str, float]) -> str:
        return f"step {step}: held-out loss {metrics['val/loss']:.4f}"


def pretrain(cfg: PretrainConfig, model_cfg: PokeVLAConfig, resume: bool, progress: bool = True) -> dict:
    """Runs (or resumes) a stage-1 run; returns the shared loop's summary."""
    if cfg.init and not resume:  # a bad source or start is refused before the run folder exists
        from pokevla.pretrain.transfer import check_init

        check_init(cfg.init, model_cfg.preset)
    recorded = ckpt.read_run(Path(cfg.out)) if resume else None
    stage = KnowledgeStage(cfg, model_cfg, init=(recorded or {}).get("init"))
    ctx = runner.start(cfg)
    return runner.fit(cfg, ctx, stage, resume, progress)
