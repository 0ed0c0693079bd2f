"""Stage-1 samples: conversations with images, tokenised with answer-only labels, batched by length.

A source (`formats.py`) is a generated knowledge folder (`records.py`: DIR/{train,val,heldout}.jsonl)
or a public LLaVA / RoboPoint / RefSpatial file (training data only); a record's images resolve
against its source's image folder. Several sources form a weighted mix. Records are tokenised once,
when the dataset is built, so the sampler knows their exact lengths; a malformed record, one whose
images are missing and one longer than the context are skipped with one line naming the file and the
record, and counted. An image that turns out undecodable when it is loaded drops its sample from the
batch, with the same kind of line.

    sample: input_ids, labels int64 (L,), pixel_values float32 (n_images, 3, S, S),
            with patch naming also patch_labels int64 (n_images, G * G) (`patch_names.py`)
    batch:  input_ids, labels, attention_mask int64 (B, L_max) right-padded (labels -100 there),
            pixel_values float32 (M, 3, S, S), every image of the batch in placeholder order,
            with patch naming also patch_labels int64 (M, G * G)
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from pokevla.common.errors import ConfigError, DatasetError
from pokevla.pretrain.augment import Augment
from pokevla.pretrain.chat import IGNORE, ChatFormat
from pokevla.pretrain.formats import KnowledgeSource, MixSampler, open_source, parse_mix, read_source
from pokevla.pretrain.patch_names import PatchNames
from pokevla.pretrain.records import record_images
from pokevla.pretrain.vlm import image_pixels
from pokevla.train.data import EpochSampler

MEGA_BATCHES = 50  # batches sorted by length together (Hugging Face's length-grouped sampler uses 50 too)


def open_sources(data: str, mix: str, split: str = "train") -> list[tuple[KnowledgeSource, float]]:
    """`--data SPEC[,SPEC]` (weight 1 each) or `--mix SPEC=WEIGHT,...` -> the sources of `split`
    with their weights (`formats.py`: a generated folder or a public JSON / JSON-lines file)."""
    if mix:
        return parse_mix(mix, split)
    specs = [p.strip() for p in data.split(",")]
    if not data.strip() or not all(specs):
        raise ConfigError(f"--data {data!r} has an empty item; write DIR or DIR,DIR")
    return [(open_source(spec, split), 1.0) for spec in specs]


def held_out_sources(sources: Sequence[tuple[KnowledgeSource, float]]) -> list[KnowledgeSource]:
    """The val split of every generated folder among `sources` that has one (public files have none)."""
    return [open_source(source.root, "val") for source, _ in sources
            if source.split is not None and (source.root / "val.jsonl").is_file()]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


@dataclass
class _Item:
    root: Path
    where: str  # "FILE record ID", for the one line about a damaged image
    images: list[str]
    input_ids: np.ndarray
    labels: np.ndarray
    turns: list[dict] | None = None  # kept only for records the augmentation may crop


class ConversationDataset(Dataset):
    """The usable records of `sources`, source after source (`sizes`: how many each gave).

    chat: the model's `ChatFormat`; image_size: S; max_length: the longest sequence kept (tokens,
    image placeholders included); limit: keep only the first `limit` records of each source (0: all);
    augment: the training set's augmentation (None: the images as stored); name_patches: label each
    sample's first image with the names of the objects under its G x G patches, G = `name_patches`
    (0: no labels; `names` then holds the index the labels come from)."""

    def __init__(self, sources: Sequence[KnowledgeSource], chat: ChatFormat, image_size: int, max_length: int,
                 limit: int = 0, warn: Callable[[str], None] = _stderr, augment: Augment | None = None,
                 name_patches: int = 0):
        self.image_size, self.pad_id, self.warn = image_size, chat.tokenizer.pad_token_id, warn
        self.chat, self.augment = chat, augment if augment is not None and augment.active else None
        self.items: list[_Item] = []
        self.sizes: list[int] = []
        self.grid = name_patches
        kept: list[dict] = []  # the records patch names are drawn from
        self.skipped = 0
        self.too_long = 0  # of the skipped: longer than max_length
        self.max_length = max_length
        for source in sources:
            before = len(self.items)
            for record in read_source(source, on_skip=self._skip):
                images = record_images(record)
                ids, labels = chat.encode(record["conversations"], len(images))
                where = f"{source.path} record {record['id']}"
                if len(ids) > max_length:
                    self._skip(f"{where}: {len(ids)} tokens, more than llm.max_length {max_length}; record skipped")
                    self.too_long += 1
                    continue
                crop = self.augment is not None and self.augment.may_crop(record)
                self.items.append(_Item(Path(record["root"]), where, images, np.asarray(ids, np.int64),
                                        np.asarray(labels, np.int64), record["conversations"] if crop else None))
                if name_patches and record.get("family") == "point_object":
                    kept.append(record)
                if limit and len(self.items) - before >= limit:
                    break
            self.sizes.append(len(self.items) - before)
            if self.sizes[-1] == 0:
                raise DatasetError(f"{source.path} has no usable record ({self.skipped} skipped so far)")
        self.names = PatchNames.from_records(kept) if name_patches else None
        if self.names is not None and not self.names.names:
            raise DatasetError("patch naming needs generated point_object records (`pokevla generate knowledge`); "
                               "the data has none: drop --patch-names")

    def skip_summary(self, what: str) -> str:
        """One line: how many `what` records were skipped and used, and how to keep the over-long ones."""
        long = (f" ({self.too_long} longer than llm.max_length {self.max_length}: a larger --llm.max-length "
                "keeps them)") if self.too_long else ""
        return f"{self.skipped} {what} record(s) skipped{long}; {len(self)} used"

    def _skip(self, line: str) -> None:
        self.skipped += 1
        self.warn(line)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def lengths(self) -> np.ndarray:
        return np.array([len(item.input_ids) for item in self.items])

    @property
    def image_counts(self) -> np.ndarray:
        return np.array([len(item.images) for item in self.items])

    def __getitem__(self, i: int) -> dict | None:
        """The sample, or None (reported) when one of its images cannot be decoded."""
        from PIL import Image, UnidentifiedImageError

        item = self.items[i]
        images = []
        for name in item.images:
            try:
                with Image.open(item.root / name) as image:
                    images.append(np.asarray(image.convert("RGB")))
            except (OSError, UnidentifiedImageError, ValueError) as e:
                self.warn(f"{item.where}: image {name} cannot be decoded ({e}); sample skipped")
                return None
        input_ids, labels = item.input_ids, item.labels
        cropped = False
        if self.augment is not None:
            # torch's generator: seeded by the run, and differently in each loader worker
            rng = np.random.default_rng(int(torch.randint(0, 2**62, ())))
            images, turns = self.augment(images, item.turns, rng)
            cropped = turns is not item.turns
            if cropped:
                ids, new_labels = self.chat.encode(turns, len(images))
                input_ids, labels = np.asarray(ids, np.int64), np.asarray(new_labels, np.int64)
        sample = {"input_ids": torch.from_numpy(input_ids), "labels": torch.from_numpy(labels),
                  "pixel_values": image_pixels(images, self.image_size)}
        if self.names is not None:
            named = torch.full((len(images), self.grid ** 2), IGNORE, dtype=torch.long)
            first = None if cropped or not images else self.names.labels(item.root / item.images[0], self.grid)
            if first is not None:  # a cropped image no longer matches its masks
                named[0] = torch.from_numpy(first)
            sample["patch_labels"] = named
        return sample

    def collate(self, samples: list[dict | None]) -> dict[str, torch.Tensor]:
        """Samples -> a right-padded batch (the module docstring); undecodable samples are left out."""
        samples = [s for s in samples if s is not None]
        if not samples:
            raise DatasetError("every sample of a batch had an undecodable image; check the dataset's images")
        width = max(len(s["input_ids"]) for s in samples)
        input_ids = torch.full((len(samples), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(samples), width), IGNORE, dtype=torch.long)
        attention_mask = torch.zeros((len(samples), width), dtype=torch.long)
        for row, s in enumerate(samples):
            n = len(s["input_ids"])
            input_ids[row, :n], labels[row, :n], attention_mask[row, :n] = s["input_ids"], s["labels"], 1
        batch = {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask,
                 "pixel_values": torch.cat([s["pixel_values"] for s in samples])}
        if self.names is not None:
            batch["patch_labels"] = torch.cat([s["patch_labels"] for s in samples])
        return batch


class LengthGroupedSampler(EpochSampler):
    """`EpochSampler`'s seeded, resumable stream, with every `MEGA_BATCHES` batches of an epoch
    sorted by modality (images per sample) and length, longest first: the samples of a batch are
    of about the same length, so little is padded, while the megabatches stay in random order.

    batch: samples per optimiser step over all ranks (batch size x accumulation x world size).
    sizes, weights: records per source (the dataset's order) and the mixture's weights; an epoch
    then draws what `formats.MixSampler` draws (each record WEIGHT times on average).
    """

    def __init__(self, lengths: np.ndarray, image_counts: np.ndarray, batch: int, seed: int, start: int = 0,
                 rank: int = 0, world_size: int = 1, sizes: Sequence[int] = (), weights: Sequence[float] = ()):
        super().__init__(len(lengths), seed, start=start, rank=rank, world_size=world_size)
        self.lengths, self.image_counts, self.mega = lengths, image_counts, batch * MEGA_BATCHES
        self.mix = MixSampler(sizes, weights, seed) if any(w != 1.0 for w in weights) else None
        if self.mix is not None:
            self.offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
            self.epoch_size = len(self.mix)

    def epoch_order(self, epoch: int) -> np.ndarray:
        if self.mix is None:
            order = super().epoch_order(epoch)
        else:
            draws = self.mix.epoch(epoch)
            order = self.offsets[draws[:, 0]] + draws[:, 1]
        groups = []
        for start in range(0, len(order), self.mega):
            group = order[start:start + self.mega]
            groups.append(group[np.lexsort((-self.lengths[group], self.image_counts[group]))])
        return np.concatenate(groups)


def held_out_batches(dataset: ConversationDataset, batch_size: int) -> Iterator[dict[str, torch.Tensor]]:
    """The whole held-out set once, in length order (deterministic, little padding)."""
    order = np.argsort(dataset.lengths, kind="stable")
    for start in range(0, len(order), batch_size):
        samples = [dataset[int(i)] for i in order[start:start + batch_size]]
        if any(s is not None for s in samples):
            yield dataset.collate(samples)
