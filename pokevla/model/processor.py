"""From raw batches (the dataset's / the robot's keys) to model inputs, as composable transforms.

Training and inference run the same transforms (openpi style); training adds the targets. A raw
batch uses the LeRobot-format keys (`observation.images.primary`, `observation.state`, `task`, ...);
each transform adds the model-side keys it produces and keeps the raw ones (the geometry teacher
reads raw depth and cameras):

    pixel_values   float32 (B, V, 3, S, S) in [0, 1]    (V views in `config.views` order)
    input_ids      int64 (B, L)   [<image> x V*N | <pad>... | prompt | <SEG> | <ACT> x Q], or with
                                  `llm.prompt_first` [prompt | <pad>... | <image> x V*N | <SEG> | <ACT> x Q]
    attention_mask int64 (B, L)   0 on the padding, which sits between the images and the prompt so
                                  the images, <SEG> and the queries are always at the same positions
    state          float32 (B, D_state) normalised
    actions        float32 (B, T, D_action) normalised (training)
    action_pad     bool (B, T) (training)
    masks          float32 (B, V, S, S) in [0, 1], the goal-mask fraction of each pixel (training)

Augmentation: training batches of a model in train mode get a random square crop of
`vision.crop_scale` of the area (inference and eval mode take the centre crop, the same framing) and
the trainer's `Processor.augment` function of `pixel_values`, applied after resizing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from pokevla.common.errors import PokeVLAError
from pokevla.model.normalize import ACTION, STATE, Normalizer
from pokevla.model.tokenizer import TokenIds

Batch = dict[str, Any]
Transform = Callable[[Batch], Batch]
FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


class InputError(PokeVLAError, ValueError):
    """A batch or observation does not have the keys, dtypes or shapes the model needs."""


def _dtype_name(dtypes: Sequence[torch.dtype]) -> str:
    return "float" if tuple(dtypes) == FLOATS else "/".join(str(d).removeprefix("torch.") for d in dtypes)


def _describe(x: Any) -> str:
    if isinstance(x, torch.Tensor):
        return f"{str(x.dtype).removeprefix('torch.')} {tuple(x.shape)}"
    return type(x).__name__


def expect(batch: Batch, key: str, dtypes: Sequence[torch.dtype], shape: Sequence[int | str],
           sizes: dict[str, int]) -> torch.Tensor:
    """Returns batch[key] after checking it; named dims in `shape` must agree with `sizes` (and are added)."""
    want = f"{_dtype_name(dtypes)} ({', '.join(str(s) for s in shape)})"
    bound = ", ".join(f"{k}={v}" for k, v in sizes.items() if k in shape)
    if key not in batch:
        raise InputError(f"missing {key}: expected {want}")
    x = batch[key]
    ok = isinstance(x, torch.Tensor) and x.dtype in dtypes and x.dim() == len(shape)
    if ok:
        for s, d in zip(shape, x.shape):
            ok = ok and (s == d if isinstance(s, int) else sizes.setdefault(s, d) == d)
    if not ok:
        raise InputError(f"{key}: expected {want}{f' with {bound}' if bound else ''}, got {_describe(x)}")
    return x


class Compose:
    def __init__(self, transforms: Sequence[Transform]):
        self.transforms = list(transforms)

    def __call__(self, batch: Batch) -> Batch:
        for t in self.transforms:
            batch = t(batch)
        return batch


class AddBatchDim:
    """A single observation (`task` a string, images (H, W, 3)) becomes a batch of one."""

    def __init__(self, views: Sequence[str]):
        self.first_image = f"observation.images.{views[0]}"

    def __call__(self, batch: Batch) -> Batch:
        image = batch.get(self.first_image)
        if not isinstance(batch.get("task"), str) or getattr(image, "ndim", None) != 3:
            return batch
        return {k: [v] if k == "task" else v[None] for k, v in batch.items()}


class ToTensors:
    """numpy arrays (possibly flipped views with negative strides) become tensors on `device`."""

    def __init__(self, device: torch.device | str):
        self.device = torch.device(device)

    def __call__(self, batch: Batch) -> Batch:
        out = {}
        for k, v in batch.items():
            if isinstance(v, np.ndarray):
                v = torch.from_numpy(np.ascontiguousarray(v))
            out[k] = v.to(self.device, non_blocking=True) if isinstance(v, torch.Tensor) else v
        return out


class CheckObservation:
    """Images of every view, the state and one instruction per sample, with the right dtypes and shapes."""

    def __init__(self, views: Sequence[str], state_dim: int):
        self.views, self.state_dim = tuple(views), state_dim

    def __call__(self, batch: Batch) -> Batch:
        sizes: dict[str, int] = {}
        for view in self.views:
            view_sizes = dict(sizes)  # views may differ in resolution, not in batch size
            expect(batch, f"observation.images.{view}", (torch.uint8,), ("B", "H", "H", 3), view_sizes)
            sizes["B"] = view_sizes["B"]
        expect(batch, STATE, FLOATS, ("B", self.state_dim), sizes)
        task = batch.get("task")
        if not isinstance(task, (list, tuple)) or len(task) != sizes["B"] or not all(isinstance(t, str) for t in task):
            raise InputError(f"task: expected a list of {sizes['B']} instruction strings, got {_describe(task)}"
                             + (f" of length {len(task)}" if isinstance(task, (list, tuple)) else ""))
        return batch


class CheckTargets:
    """Training targets: the action chunk, its padding flags and (if segmentation is on) the goal masks."""

    def __init__(self, views: Sequence[str], chunk: int, action_dim: int, need_masks: bool):
        self.views, self.chunk, self.action_dim, self.need_masks = tuple(views), chunk, action_dim, need_masks

    def __call__(self, batch: Batch) -> Batch:
        sizes = {"B": len(batch["task"])}
        expect(batch, ACTION, FLOATS, ("B", self.chunk, self.action_dim), sizes)
        expect(batch, "action_is_pad", (torch.bool,), ("B", self.chunk), sizes)
        for view in self.views if self.need_masks else ():
            view_sizes = dict(sizes, H=batch[f"observation.images.{view}"].shape[1])
            expect(batch, f"observation.masks.{view}", (torch.uint8, torch.bool), ("B", "H", "H"), view_sizes)
        return batch


class CropViews:
    """Square crop of `scale` of each view's area, the same window for its image, goal mask, depth
    and intrinsics (cx, cy shift with the window), so masks and geometry targets stay aligned.

    Training draws the window per sample (augmentation); inference takes the centre, so a policy
    sees at test time the framing it was trained on (OpenVLA-OFT's random / centre crop).
    """

    def __init__(self, views: Sequence[str], scale: float, random: bool):
        self.views, self.scale, self.random = tuple(views), scale, random

    def __call__(self, batch: Batch) -> Batch:
        if self.scale >= 1.0:
            return batch
        out = dict(batch)
        for view in self.views:
            image = batch[f"observation.images.{view}"]
            B, H = image.shape[:2]
            side = max(1, int(round(H * self.scale ** 0.5)))
            if self.random:
                y0 = torch.randint(0, H - side + 1, (B,)).tolist()
                x0 = torch.randint(0, H - side + 1, (B,)).tolist()
            else:
                y0 = x0 = [(H - side) // 2] * B
            for key in (f"observation.images.{view}", f"observation.masks.{view}", f"observation.depth.{view}"):
                if key in batch and batch[key].shape[1] == H:
                    out[key] = torch.stack([x[y:y + side, u:u + side] for x, y, u in zip(batch[key], y0, x0)])
            key = f"observation.intrinsics.{view}"
            if key in batch:
                expect(batch, key, FLOATS, ("B", 3, 3), {"B": B})
                shift = torch.tensor([[u, y] for y, u in zip(y0, x0)], dtype=batch[key].dtype, device=batch[key].device)
                K = batch[key].clone()
                K[:, :2, 2] -= shift
                out[key] = K
        return out


def _resize(x: torch.Tensor, size: int, mode: str) -> torch.Tensor:
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    if mode == "area":
        return F.interpolate(x, size=(size, size), mode="area")
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)


def pixel_values(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float32 (B, 3, S, S) in [0, 1], resized with antialiasing."""
    return _resize(images.permute(0, 3, 1, 2).float().div(255.0), size, "bilinear")


class ResizeImages:
    """uint8 (B, H, H, 3) per view -> `pixel_values` float32 (B, V, 3, S, S) in [0, 1]."""

    def __init__(self, views: Sequence[str], size: int):
        self.views, self.size = tuple(views), size

    def __call__(self, batch: Batch) -> Batch:
        images = [pixel_values(batch[f"observation.images.{v}"], self.size) for v in self.views]
        return dict(batch, pixel_values=torch.stack(images, 1))


class ResizeMasks:
    """uint8 (B, H, H) goal masks (k > 0: an object of interest) -> `masks` float32 (B, V, S, S).

    Area resampling keeps the fraction of each model pixel covered by goal objects.
    """

    def __init__(self, views: Sequence[str], size: int):
        self.views, self.size = tuple(views), size

    def __call__(self, batch: Batch) -> Batch:
        masks = [(batch[f"observation.masks.{v}"] > 0).float()[:, None] for v in self.views]
        return dict(batch, masks=torch.cat([_resize(m, self.size, "area") for m in masks], 1))


class Augment:
    """The trainer's image augmentation, applied to `pixel_values` (B, V, 3, S, S)."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]):
        self.fn = fn

    def __call__(self, batch: Batch) -> Batch:
        return dict(batch, pixel_values=self.fn(batch["pixel_values"]))


class Normalize:
    """`state` (and in training `actions`, `action_pad`) from the raw values and the statistics."""

    def __init__(self, normalizer: Normalizer | None, training: bool):
        self.normalizer, self.training = normalizer, training

    def __call__(self, batch: Batch) -> Batch:
        if self.normalizer is None:
            raise PokeVLAError("the model has no normalisation statistics: build it with stats=... "
                               "(the dataset's meta/stats.json) or load a checkpoint")
        out = dict(batch, state=self.normalizer.normalize(STATE, batch[STATE]))
        if self.training:
            out["actions"] = self.normalizer.normalize(ACTION, batch[ACTION])
            out["action_pad"] = batch["action_is_pad"]
        return out


class TokenizePrompt:
    """`task` -> `input_ids`, `attention_mask` laid out as in the module docstring.

    Instructions are lower-cased and lose surrounding spaces and a final period (OpenVLA's prompt).
    `pad_to` fixes the prompt width (static shapes for an exported graph); by default rows are
    padded to the longest prompt of the batch.
    """

    def __init__(self, tokenizer, ids: TokenIds, template: str, num_image_tokens: int, num_queries: int,
                 max_length: int, pad_to: int | None = None, prompt_first: bool = False):
        self.tokenizer, self.ids, self.template, self.pad_to = tokenizer, ids, template, pad_to
        self.prompt_first = prompt_first
        self.num_image_tokens, self.num_queries, self.max_length = num_image_tokens, num_queries, max_length
        self.fixed = num_image_tokens + 1 + num_queries
        self.template_tokens = len(tokenizer(template.format(instruction=""), add_special_tokens=False)["input_ids"])

    def __call__(self, batch: Batch) -> Batch:
        prompts = [self.template.format(instruction=t.strip().rstrip(".").lower()) for t in batch["task"]]
        texts = self.tokenizer(prompts, add_special_tokens=False)["input_ids"]
        for i, text in enumerate(texts):
            if self.fixed + len(text) > self.max_length:
                budget = self.max_length - self.fixed - self.template_tokens
                raise InputError(f"task[{i}]: the instruction is {len(text) - self.template_tokens} tokens long; at "
                                 f"most {budget} fit the context (llm.max_length={self.max_length} holds "
                                 f"{self.fixed} image, <SEG> and query tokens and the prompt's "
                                 f"{self.template_tokens})")
            if self.pad_to is not None and len(text) > self.pad_to:
                raise InputError(f"task[{i}]: the prompt is {len(text)} tokens long; this model takes at most "
                                 f"{self.pad_to} (its static prompt length)")
        width = self.pad_to if self.pad_to is not None else max(len(t) for t in texts)
        ids = self.ids
        rows, masks = [], []
        for text in texts:
            pad = width - len(text)
            images, tail = [ids.image] * self.num_image_tokens, [ids.seg] + [ids.action] * self.num_queries
            if self.prompt_first:
                rows.append(text + [ids.pad] * pad + images + tail)
                masks.append([1] * len(text) + [0] * pad + [1] * (len(images) + len(tail)))
            else:
                rows.append(images + [ids.pad] * pad + text + tail)
                masks.append([1] * len(images) + [0] * pad + [1] * (len(text) + len(tail)))
        device = batch["pixel_values"].device if "pixel_values" in batch else None
        return dict(batch, input_ids=torch.tensor(rows, dtype=torch.long, device=device),
                    attention_mask=torch.tensor(masks, dtype=torch.long, device=device))


class Processor:
    """The transforms of one model: `inference(observation)` and `training(batch)`."""

    def __init__(self, config, tokenizer, ids: TokenIds, normalizer: Normalizer | None,
                 augment: Callable[[torch.Tensor], torch.Tensor] | None = None):
        self.config, self.tokenizer, self.ids = config, tokenizer, ids
        self.normalizer, self.augment = normalizer, augment
        c = config
        # built once: it tokenises the template, and transforms are composed on every call
        self._tokenize = TokenizePrompt(tokenizer, ids, c.llm.prompt, len(c.views) * c.grid ** 2, c.llm.num_queries,
                                        c.llm.max_length, prompt_first=c.llm.prompt_first)

    def tokenize(self, batch: Batch) -> Batch:
        """`batch` with `task` -> the same with this model's `input_ids` and `attention_mask` (the
        prompt alone: processed inputs told another instruction need nothing else redone)."""
        return self._tokenize(batch)

    def fixed_width(self, prompt_tokens: int) -> TokenizePrompt:
        """The prompt tokeniser padding every prompt to `prompt_tokens` tokens (static shapes)."""
        t = self._tokenize
        return TokenizePrompt(t.tokenizer, t.ids, t.template, t.num_image_tokens, t.num_queries, t.max_length,
                              pad_to=prompt_tokens, prompt_first=t.prompt_first)

    def _common(self, device, training: bool, augment: bool, tokenize: Transform | None = None) -> list[Transform]:
        c = self.config
        steps: list[Transform] = [ToTensors(device), CheckObservation(c.views, c.expert.state_dim)]
        if training:
            steps.append(CheckTargets(c.views, c.expert.chunk_size, c.expert.action_dim, c.seg_enabled))
        steps += [CropViews(c.views, c.vision.crop_scale, random=augment), ResizeImages(c.views, c.vision.image_size)]
        if augment and self.augment is not None:
            steps.append(Augment(self.augment))
        if training and c.seg_enabled:
            steps.append(ResizeMasks(c.views, c.vision.image_size))
        steps += [Normalize(self.normalizer, training), tokenize or self._tokenize]
        return steps

    def inference(self, observation: Batch, device: torch.device | str = "cpu",
                  tokenize: Transform | None = None) -> Batch:
        """A raw observation (batched, or single with `task` a string) -> model inputs; `tokenize`
        replaces the prompt tokeniser (e.g. `fixed_width(L)`)."""
        steps = self._common(device, training=False, augment=False, tokenize=tokenize)
        return Compose([AddBatchDim(self.config.views), *steps])(dict(observation))

    def training(self, batch: Batch, device: torch.device | str = "cpu", augment: bool = True) -> Batch:
        """A raw training batch -> model inputs and targets; `augment=False` (a model in eval mode)
        gives the deterministic inference view of the images, e.g. for validation losses."""
        return Compose(self._common(device, training=True, augment=augment))(dict(batch))
