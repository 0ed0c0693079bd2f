"""Parameter counts and timings of a model: what `pokevla model info` and `model bench` print."""

from __future__ import annotations

import math
import statistics
import time

import torch

from pokevla.model.lora import is_lora
from pokevla.model.synthetic import synthetic_batch

PAPER_TOTAL = 1.22e9  # PokeVLA, Table IV of the paper
INFERENCE_PARTS = ("vision.dinov2", "vision.siglip", "projector", "language.llm", "language.added_tokens", "expert")
TRAINING_PARTS = ("segmentation", "geometry.projector")


def _params(model, part: str) -> list[tuple[str, torch.nn.Parameter]]:
    if part == "language.added_tokens":
        return [("seg_embed", model.language.seg_embed), ("query_embed", model.language.query_embed)]
    named = list(model.get_submodule(part).named_parameters())
    if part in ("vision.dinov2", "vision.siglip"):  # an encoder's conv stem counts as part of it
        named += list(model.get_submodule(f"{part}_stem").named_parameters(prefix="stem"))
    return named


def parameter_counts(model) -> dict:
    """Per component: base parameters (tied weights once, LoRA adapters apart), adapters, trainable."""
    parts = {}
    for part in INFERENCE_PARTS + TRAINING_PARTS:
        if part in TRAINING_PARTS and getattr(model, part.split(".")[0]) is None:
            continue
        named = _params(model, part)
        parts[part] = {"params": sum(p.numel() for n, p in named if not is_lora(n)),
                       "lora": sum(p.numel() for n, p in named if is_lora(n)),
                       "trainable": sum(p.numel() for _, p in named if p.requires_grad)}
    inference = sum(parts[p]["params"] for p in INFERENCE_PARTS)
    total = sum(v["params"] for v in parts.values())
    return {"components": parts, "inference_params": inference, "training_head_params": total - inference,
            "total_params": total, "trainable_params": sum(v["trainable"] for v in parts.values()),
            "paper_total": PAPER_TOTAL, "inference_vs_paper_pct": 100 * (inference / PAPER_TOTAL - 1),
            "total_vs_paper_pct": 100 * (total / PAPER_TOTAL - 1)}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _summary(times_s: list[float]) -> dict:
    ms = sorted(t * 1000 for t in times_s)
    median = statistics.median(ms)
    return {"median_ms": median, "mean_ms": statistics.fmean(ms), "p90_ms": ms[math.ceil(0.9 * len(ms)) - 1],
            "min_ms": ms[0], "n": len(ms), "hz": 1000.0 / median}


def time_inference(model, batch_size: int, image_size: int, iters: int, warmup: int) -> dict:
    """`predict_action_chunk` on raw uint8 observations (resizing and tokenising included)."""
    obs = synthetic_batch(model.config, batch_size, image_size, training=False)
    times = []
    for i in range(warmup + iters):
        _sync(model.device)
        start = time.perf_counter()
        model.predict_action_chunk(obs)
        _sync(model.device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return _summary(times)


def time_train_step(model, batch_size: int, image_size: int, iters: int, warmup: int,
                    autocast_dtype: torch.dtype | None) -> dict:
    """forward + backward + clip 1.0 + AdamW step on a raw training batch (all losses on)."""
    batch = synthetic_batch(model.config, batch_size, image_size, training=True)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    model.train()
    device = model.device
    times = []
    for i in range(warmup + iters):
        _sync(device)
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            loss, _ = model(batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        _sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    model.eval()
    return _summary(times)
