"""PokeVLA: the PokeVLM backbone, the action expert and the two training-only heads.

    images of V views -> DINOv2 + SigLIP -> projector -+
    prompt tokens, <SEG>, Q action queries -------------+-> Qwen2 -> h_v (B, V, N, d), h_seg (B, d), h_q (B, Q, d)
    action expert(h_v, h_seg, [h_q ; state])  -> action chunk (B, T, 7)        L_act = L1
    goal segmentation(h_seg, h_v of each view) -> goal mask of each view       L_seg = focal + KL   (training)
    geometry projector(h_v) vs teacher features -> per patch                   L_geo = 1 - cos      (training)

    L = L_act + loss.seg_weight * L_seg + loss.geo_weight * L_geo   (a weight of 0 removes that head)

`forward(batch)` takes a raw training batch (the dataset's keys, see `processor.py`) and returns
(loss, metrics); `predict_action_chunk(observation)` takes raw observations and returns raw actions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pokevla.common.errors import PokeVLAError
from pokevla.model.action_expert import ActionExpert
from pokevla.model.backbones import Backbones, resolve_backbones
from pokevla.model.config import PokeVLAConfig
from pokevla.model.geometry import GeometryAlignment
from pokevla.model.language import LanguageModel
from pokevla.model.lora import apply_finetune
from pokevla.model.normalize import ACTION, Normalizer
from pokevla.model.processor import Batch, Processor
from pokevla.model.segmentation import GoalSegmentationHead, segmentation_loss
from pokevla.model.tokenizer import load_tokenizer, token_ids
from pokevla.model.vision import Projector, VisionEncoder


class PokeVLA(nn.Module):
    """The model of `config`.

    stats: normalisation statistics in LeRobot's format (the dataset's meta/stats.json); needed by
        `forward` and `predict_action_chunk`, stored by `save_pretrained`.
    training_heads: build the segmentation head and the geometry projector (and teacher); an
        inference-only model leaves them out.
    backbones, load_weights, tokenizer: set by `from_pretrained` (exact backbone configs, no weights
        from the `*_path` folders, the checkpoint's tokenizer); by default the backbones follow the
        config and pretrained weights are read from the configured local folders.
    """

    def __init__(self, config: PokeVLAConfig, stats: dict | None = None, *, training_heads: bool = True,
                 backbones: Backbones | None = None, load_weights: bool = True, tokenizer: Any = None):
        super().__init__()
        if backbones is None:
            config, backbones = resolve_backbones(config)
        self.config, self.backbones, self.training_heads = config, backbones, training_heads
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(config.llm.path)
        self.token_ids = token_ids(self.tokenizer, backbones.llm.vocab_size)
        e = config.expert
        normalizer = None if stats is None else Normalizer.for_model(stats, config.norm, e.state_dim, e.action_dim)

        self.vision = VisionEncoder(config.vision, backbones.dinov2, backbones.siglip, load_weights)
        d = backbones.llm.hidden_size
        self.projector = Projector(self.vision.out_dim, d)
        self.language = LanguageModel(config.llm, backbones.llm, load_weights)
        self.expert = ActionExpert(config.expert, d)
        seg, geo = training_heads and config.seg_enabled, training_heads and config.geo_enabled
        self.segmentation = GoalSegmentationHead(config.seg, d, config.grid) if seg else None
        self.geometry = GeometryAlignment(config.geometry, d, config.grid, config.views) if geo else None
        apply_finetune(self.vision, config.vision.finetune, config.lora)
        apply_finetune(self.language.llm, config.llm.finetune, config.lora)
        self.processor = Processor(config, self.tokenizer, self.token_ids, normalizer)

    @property
    def normalizer(self) -> Normalizer | None:
        """The statistics' normaliser; the processor owns it, as it applies it to every batch."""
        return self.processor.normalizer

    @normalizer.setter
    def normalizer(self, value: Normalizer | None) -> None:
        self.processor.normalizer = value

    @property
    def device(self) -> torch.device:
        return self.expert.latents.device

    def encode(self, pixel_values: torch.Tensor, input_ids: torch.Tensor,
               attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """pixel_values (B, V, 3, S, S), input_ids / attention_mask (B, L)
        -> h_v (B, V, N, d), h_seg (B, d), h_q (B, Q, d)."""
        B, V = pixel_values.shape[:2]
        tokens = self.projector(self.vision(pixel_values.flatten(0, 1)))  # (B*V, N, d)
        N, d = tokens.shape[1:]
        h_v, h_seg, h_q = self.language(tokens.reshape(B, V * N, d), input_ids, attention_mask)
        return h_v.view(B, V, N, d), h_seg, h_q

    def infer(self, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
              state: torch.Tensor) -> torch.Tensor:
        """Model inputs -> normalised action chunk (B, T, D_action); the part worth `torch.compile`."""
        h_v, h_seg, h_q = self.encode(pixel_values, input_ids, attention_mask)
        return self.expert(h_v.flatten(1, 2), h_seg, h_q, state)

    def _check_training_heads(self) -> None:
        if not self.training_heads:
            raise PokeVLAError("this model was built without its training heads (inference only); "
                               "build or load it with training_heads=True to compute the training loss")

    def forward(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """A raw training batch -> (loss, metrics). Runs the processor, then `compute_loss`."""
        self._check_training_heads()
        return self.compute_loss(self.processor.training(batch, self.device, augment=self.training))

    def compute_loss(self, inputs: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """Processed inputs (`processor.training`) -> (L, metrics as floats)."""
        self._check_training_heads()
        h_v, h_seg, h_q = self.encode(inputs["pixel_values"], inputs["input_ids"], inputs["attention_mask"])
        pred = self.expert(h_v.flatten(1, 2), h_seg, h_q, inputs["state"]).float()
        loss, metrics = self.action_loss(pred, inputs["actions"], inputs["action_pad"])
        if self.segmentation is not None:
            coarse, fine = self.segmentation(h_seg, h_v)
            l_seg, parts = segmentation_loss(coarse, fine, inputs["masks"], self.config.loss)
            loss = loss + self.config.loss.seg_weight * l_seg
            metrics.update(loss_seg=l_seg, **parts)
        if self.geometry is not None:
            l_geo, parts = self.geometry(h_v, inputs)
            loss = loss + self.config.loss.geo_weight * l_geo
            metrics.update(loss_geo=l_geo, **parts)
        metrics["loss"] = loss
        values = torch.stack([v.detach().float() for v in metrics.values()]).tolist()  # one device sync
        return loss, dict(zip(metrics, values))

    def action_loss(self, pred: torch.Tensor, target: torch.Tensor,
                    pad: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """pred, target (B, T, D) normalised, pad (B, T) -> (L_act, its parts). Padded steps do not count.

        With `expert.gripper == "logit"` the last dim of `pred` is a close logit trained with binary
        cross-entropy against target > 0 (closing is +1), the rest L1; L_act is their sum."""
        keep = (~pad).unsqueeze(-1).float()
        if self.config.expert.gripper == "regression":
            l1 = ((pred - target).abs() * keep).sum() / (keep.sum() * pred.shape[-1]).clamp_min(1.0)
            return l1, {"loss_action": l1}
        arm_l1 = ((pred[..., :-1] - target[..., :-1]).abs() * keep).sum() / (keep.sum() * (pred.shape[-1] - 1)).clamp_min(1.0)
        bce = F.binary_cross_entropy_with_logits(pred[..., -1], (target[..., -1] > 0).float(), reduction="none")
        bce = (bce * keep[..., 0]).sum() / keep.sum().clamp_min(1.0)
        return arm_l1 + bce, {"loss_action": arm_l1 + bce, "loss_arm_l1": arm_l1, "loss_gripper_bce": bce}

    def actions_from_output(self, pred: torch.Tensor) -> torch.Tensor:
        """The expert's normalised output (B, T, D) -> raw actions: a gripper logit becomes +-1 by its sign."""
        return raw_actions(pred, self.config.expert.gripper, self.normalizer)

    @torch.inference_mode()
    def predict_action_chunk(self, observation: Batch) -> torch.Tensor:
        """Raw observation(s) -> raw actions, float32 (B, T, D_action) on the model's device.

        `observation` has the images of every view (uint8 (B, H, H, 3)), `observation.state` (B, 8) and
        `task` (B strings), as tensors or numpy arrays; a single observation (no batch dimension, `task`
        a string) gives B = 1. The training-only heads are not run.
        """
        inputs = self.processor.inference(observation, self.device)
        actions = self.infer(inputs["pixel_values"], inputs["input_ids"], inputs["attention_mask"], inputs["state"])
        return self.actions_from_output(actions.float())

    def save_pretrained(self, path: str | Path) -> None:
        """Writes weights (safetensors), config, backbone configs, tokenizer and statistics into one folder."""
        from pokevla.model.checkpoint import save_pretrained

        save_pretrained(self, path)

    @classmethod
    def from_pretrained(cls, path: str | Path, *, training_heads: bool = False,
                        device: str | torch.device = "cpu") -> "PokeVLA":
        """The model saved in `path`; `training_heads=True` to continue training it."""
        from pokevla.model.checkpoint import from_pretrained

        return from_pretrained(path, training_heads=training_heads, device=device)

    def load_checkpoint(self, path: str | Path) -> None:
        """Loads the weights saved in `path` into this model; its config and statistics must match ours."""
        from pokevla.model.checkpoint import load_into

        load_into(self, path)


def raw_actions(pred: torch.Tensor, gripper: str, normalizer: Normalizer) -> torch.Tensor:
    """Normalised expert output (B, T, D) -> raw actions; with `gripper == "logit"` the last dim
    is a close logit, executed as +-1 by its sign (shared by every backend that runs the expert)."""
    if gripper == "logit":
        pred = pred.clone()
        pred[..., -1] = torch.where(pred[..., -1] > 0, 1.0, -1.0)
    return normalizer.unnormalize(ACTION, pred.float())
