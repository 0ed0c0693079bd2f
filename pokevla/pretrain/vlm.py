"""PokeVLM: the stage-1 vision-language model, the part of PokeVLA that sees and reads.

    images -> DINOv2 + SigLIP -> projector -> patches written at the <image> placeholders -+
    chat-formatted conversation tokens ---------------------------------------------------+-> Qwen2 -> next token

It is built from the same `PokeVLAConfig` (the same presets) and holds the same modules under the
same names as `PokeVLA` (`vision`, `projector`, `language`, `tokenizer`), so its weights go straight
into a new PokeVLA (`pokevla.pretrain.transfer`, `pokevla train --init`). The loss is next-token
cross-entropy on the answer tokens only (`chat.py` places the labels).

What trains (`train`): "projector" (LLaVA's alignment), "llm" (projector + the whole language model),
"lora" (projector + LoRA adapters on the language model, `config.lora`), "all" (the vision encoders
too). The encoders stay frozen otherwise, as in Prismatic. The `<SEG>` and action-query embeddings the
language module holds belong to stage 2: unused and frozen here, and never handed over.

A run with patch naming (`pokevla.pretrain.patch_names`) adds `patch_head`, a linear layer naming the
object under each vision patch, and its names; it serves that auxiliary loss only.

A checkpoint is one folder (`pokevla.model.checkpoint.save_folder`): config.json (with "model":
"pokevlm", what trained and the patch names, if any), backbones.json, model.safetensors and the
tokenizer with its chat template.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence, get_args

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pokevla.common.errors import CheckpointError, ConfigError
from pokevla.common.io import read_json
from pokevla.model.backbones import Backbones, resolve_backbones
from pokevla.model.checkpoint import BACKBONES, CONFIG, VLM_KIND, WEIGHTS, load_weights, read_config, save_folder
from pokevla.model.config import PokeVLAConfig
from pokevla.model.language import LanguageModel
from pokevla.model.lora import apply_finetune
from pokevla.model.processor import InputError, pixel_values
from pokevla.model.tokenizer import load_tokenizer, token_ids
from pokevla.model.vision import Projector, VisionEncoder
from pokevla.pretrain.chat import IGNORE, ChatFormat, with_chat_template
from pokevla.pretrain.config import Train

TRAINS: tuple[str, ...] = get_args(Train)
LLM_MODE = {"projector": "frozen", "llm": "full", "lora": "lora", "all": "full"}


def image_pixels(images: Sequence[np.ndarray | torch.Tensor], size: int) -> torch.Tensor:
    """uint8 images (H, W, 3), any sizes -> float32 (n, 3, S, S) in [0, 1]: the VLA processor's resize.

    The whole image is resized (never cropped): point and box answers are fractions of the full image."""
    if not images:
        return torch.zeros(0, 3, size, size)
    return torch.cat([pixel_values(torch.from_numpy(np.array(image, dtype=np.uint8))[None], size) for image in images])


class PokeVLM(nn.Module):
    """The stage-1 model of `config`; `train` chooses what trains (see the module docstring).

    backbones, load_weights, tokenizer: as for `PokeVLA` (set by `from_pretrained`); by default the
    backbones follow the config and pretrained weights are read from its local folders.
    """

    training_heads = False  # read by `checkpoint.load_weights`: stage 1 has neither of stage 2's heads

    def __init__(self, config: PokeVLAConfig, train: Train = "llm", *, backbones: Backbones | None = None,
                 load_weights: bool = True, tokenizer: Any = None):
        super().__init__()
        if train not in TRAINS:
            raise ConfigError(f"unknown stage-1 training mode {train!r}; one of {', '.join(TRAINS)}")
        if backbones is None:
            config, backbones = resolve_backbones(config)
        self.config, self.backbones, self.trains = config, backbones, train
        self.tokenizer = with_chat_template(tokenizer if tokenizer is not None else load_tokenizer(config.llm.path))
        self.token_ids = token_ids(self.tokenizer, backbones.llm.vocab_size)
        self.vision = VisionEncoder(config.vision, backbones.dinov2, backbones.siglip, load_weights)
        self.projector = Projector(self.vision.out_dim, backbones.llm.hidden_size)
        self.language = LanguageModel(config.llm, backbones.llm, load_weights)
        self.language.seg_embed.requires_grad_(False)
        self.language.query_embed.requires_grad_(False)
        apply_finetune(self.vision, "full" if train == "all" else "frozen", config.lora)
        apply_finetune(self.language.llm, LLM_MODE[train], config.lora)
        self.chat = ChatFormat(self.tokenizer, self.token_ids.image, config.grid ** 2)
        self.patch_names: list[str] = []
        self.patch_head: nn.Linear | None = None
        self.patch_weight = 0.0  # the auxiliary loss's weight: a training setting, set by the run

    def add_patch_head(self, names: Sequence[str]) -> None:
        """A fresh head naming the object under each patch: class k + 1 is names[k] (0 is never a label)."""
        self.patch_names = list(names)
        self.patch_head = nn.Linear(self.vision.out_dim, len(self.patch_names) + 1).to(self.device)

    @property
    def device(self) -> torch.device:
        return self.projector.net[0].weight.device

    def embed(self, pixels: torch.Tensor, input_ids: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        """pixels (M, 3, S, S), input_ids (B, L) with N placeholders per image -> input embeddings (B, L, d).

        The images' patches fill the placeholders in reading order (row by row), M * N of them.
        features: the vision encoders' (M, N, D) output for `pixels`, when already computed."""
        table = self.language.llm.get_input_embeddings()
        is_image = input_ids == self.token_ids.image
        embeds = table(input_ids.masked_fill(is_image, self.token_ids.pad))  # placeholders have no row in the table
        placeholders = int(is_image.sum())
        if pixels.shape[0] == 0:
            if placeholders:
                raise InputError(f"{placeholders} image placeholders but no image")
            return embeds
        if features is None:
            features = self.vision(pixels.to(self.device))
        patches = self.projector(features)  # (M, N, d)
        if patches.shape[0] * patches.shape[1] != placeholders:
            raise InputError(f"{placeholders} image placeholders for {patches.shape[0]} image(s) of "
                             f"{patches.shape[1]} patches each")
        return embeds.masked_scatter(is_image.unsqueeze(-1), patches.to(embeds.dtype).flatten(0, 1))

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """A collated batch -> (loss, metrics as floats): the mean cross-entropy over its answer tokens
        ("loss"), plus `patch_weight` times the patch-naming cross-entropy ("patch_loss") when the batch
        has patch labels and the model a head.

        batch: input_ids, attention_mask, labels int64 (B, L) (right-padded, labels -100 off the
        answers), pixel_values float32 (M, 3, S, S) (every image of the batch, in placeholder order),
        optionally patch_labels int64 (M, N) (-100: no label)."""
        device = self.device
        input_ids, attention_mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
        labels = batch["labels"].to(device)
        pixels = batch["pixel_values"].to(device)
        features = self.vision(pixels) if pixels.shape[0] else None  # (M, N, D)
        embeds = self.embed(pixels, input_ids, features)
        position_ids = (attention_mask.cumsum(-1) - 1).clamp_min(0)
        h = self.language.llm.model(inputs_embeds=embeds, attention_mask=attention_mask, position_ids=position_ids,
                                    use_cache=False).last_hidden_state
        # position t predicts token t + 1; only answer positions reach the (vocabulary-wide) head
        targets = labels[:, 1:]
        keep = targets != IGNORE
        logits = self.language.llm.lm_head(h[:, :-1][keep]).float()
        loss = F.cross_entropy(logits, targets[keep])
        metrics = {"loss": loss.item(), "answer_tokens": float(keep.sum())}
        if self.patch_head is not None and self.patch_weight > 0 and "patch_labels" in batch and features is not None:
            named = batch["patch_labels"].to(device).flatten()
            has_label = named != IGNORE
            if has_label.any():
                naming = F.cross_entropy(self.patch_head(features.flatten(0, 1)[has_label]).float(), named[has_label])
                metrics["patch_loss"] = naming.item()
            else:  # a zero that still reaches the head, so that DDP finds every parameter used
                naming = self.patch_head.weight.sum() * 0.0
            loss = loss + self.patch_weight * naming
        return loss, metrics

    def generate(self, images: Sequence[np.ndarray | torch.Tensor], question: str, max_new_tokens: int = 64) -> str:
        """Greedy answer to `question` about uint8 `images` (H, W, 3), up to the end-of-turn token.

        `question` may carry one `<image>` tag per image (placed as written); without tags the images
        come first."""
        return self.generate_batch([(images, question)], max_new_tokens)[0]

    @torch.inference_mode()
    def generate_batch(self, items: Sequence[tuple[Sequence[np.ndarray | torch.Tensor], str]],
                       max_new_tokens: int = 64) -> list[str]:
        """Greedy answers to (images, question) pairs, decoded together: the same answers as one at a time.

        Prompts are left-padded to a common length L (B, L), positions count real tokens only, and
        every step decodes all B rows at once; a row that reached its end-of-turn token stops growing."""
        was_training = self.training
        self.eval()
        device, pad = self.device, self.token_ids.pad
        prompts = [self.chat.prompt(question, len(images)) for images, question in items]
        width = max(len(p) for p in prompts)
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=device)  # (B, L)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
        size = self.config.vision.image_size
        pixels = torch.cat([image_pixels(images, size) for images, _ in items])  # (M, 3, S, S), placeholder order
        llm = self.language.llm
        positions = (mask.cumsum(-1) - 1).clamp_min(0)
        out = llm(inputs_embeds=self.embed(pixels, ids), attention_mask=mask, position_ids=positions,
                  use_cache=True, logits_to_keep=1)
        stop = torch.tensor(sorted({self.chat.end_of_turn, self.tokenizer.eos_token_id}), device=device)
        answers: list[list[int]] = [[] for _ in prompts]
        running = torch.ones(len(prompts), dtype=torch.bool, device=device)
        for _ in range(max_new_tokens):
            tokens = out.logits[:, -1].argmax(-1)  # (B,)
            running &= ~torch.isin(tokens, stop)
            if not running.any():
                break
            for row in running.nonzero().flatten().tolist():
                answers[row].append(int(tokens[row]))
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            positions = positions[:, -1:] + 1
            out = llm(inputs_embeds=llm.get_input_embeddings()(tokens[:, None]), attention_mask=mask,
                      position_ids=positions, past_key_values=out.past_key_values, use_cache=True, logits_to_keep=1)
        self.train(was_training)
        return [self.tokenizer.decode(answer, skip_special_tokens=True) for answer in answers]

    def save_pretrained(self, path: str | Path) -> None:
        meta = {"model": VLM_KIND, "train": self.trains}
        save_folder(self, path, meta={**meta, "patch_names": self.patch_names} if self.patch_head is not None else meta)

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | torch.device = "cpu") -> "PokeVLM":
        """The stage-1 model saved in the folder `path`."""
        path = Path(path)
        meta = read_stage1_meta(path)
        try:
            backbones = Backbones.from_json(read_json(path / BACKBONES, CheckpointError))
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{path / BACKBONES}: {e}") from None
        model = cls(read_config(path), meta["train"], backbones=backbones, load_weights=False,
                    tokenizer=load_tokenizer(path))
        if meta.get("patch_names"):
            model.add_patch_head(meta["patch_names"])
        load_weights(model, path / WEIGHTS)
        return model.to(device)

    def load_checkpoint(self, path: str | Path) -> None:
        """Loads the weights saved in `path` into this model; its config must be ours."""
        path = Path(path)
        meta = read_stage1_meta(path)
        if read_config(path) != self.config or meta["train"] != self.trains:
            raise CheckpointError(f"{path} was saved from another stage-1 configuration")
        if meta.get("patch_names", []) != self.patch_names:
            raise CheckpointError(f"{path} names other objects in its patch-naming head than this run's data "
                                  f"({len(meta.get('patch_names', []))} vs {len(self.patch_names)}); resume on the same data")
        load_weights(self, path / WEIGHTS)


def read_stage1_meta(path: Path) -> dict:
    """config.json of a stage-1 folder; anything else is a one-line `CheckpointError`."""
    if not (path / CONFIG).is_file():
        raise CheckpointError(f"{path} is not a model folder: {CONFIG} is missing")
    meta = read_json(path / CONFIG, CheckpointError)
    if meta.get("model") != VLM_KIND:
        raise CheckpointError(f"{path} is not a stage-1 PokeVLM checkpoint (a PokeVLA policy?); "
                              f"make one with `pokevla pretrain` or `pokevla vlm init`")
    if meta.get("train") not in TRAINS:
        raise CheckpointError(f"{path / CONFIG}: unknown training mode {meta.get('train')!r}")
    return meta
