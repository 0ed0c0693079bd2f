"""What the server runs: a checkpoint behind one `predict(observations) -> actions` call.

`TorchBackend` runs the PyTorch model; `pokevla.serve.onnx.OnnxBackend` runs an exported graph.
Both read the same checkpoint folder for the normalisation statistics, the tokenizer and the image
shape the model was trained on, and describe themselves in the metadata a client receives.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Protocol

import numpy as np

from pokevla.common.errors import CheckpointError
from pokevla.serve.protocol import ObservationSpec


class Backend(Protocol):
    name: str
    spec: ObservationSpec
    source: Path  # the folder it was loaded from (checkpoint or export)

    def predict(self, observations: list[dict]) -> np.ndarray:
        """B observations (PokeVLA keys, numpy) -> raw actions float32 (B, T, D_action)."""
        ...

    def prepare_thread(self) -> None:
        """Called once on the thread that will run `predict`."""
        ...

    def metadata(self) -> dict: ...


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def stack(observations: list[dict], views: tuple[str, ...]) -> dict:
    """B single observations -> one batch: images (B, H, W, 3), state (B, D), task [B]."""
    batch = {f"observation.images.{v}": np.stack([o[f"observation.images.{v}"] for o in observations]) for v in views}
    batch["observation.state"] = np.stack([o["observation.state"] for o in observations])
    batch["task"] = [o["task"] for o in observations]
    return batch


def training_tasks(model_dir: Path) -> list[str]:
    """The instructions a checkpoint was trained on, as its training record lists them (or none)."""
    training = Path(model_dir) / "training.json"
    tasks = json.loads(training.read_text()).get("data", {}).get("tasks") if training.is_file() else None
    return [t for t in tasks or [] if isinstance(t, str)]


def sample_observations(spec: ObservationSpec, dataset: str | None, count: int, seed: int = 0,
                        tasks: list[str] | None = None) -> list[dict]:
    """`count` observations: evenly spaced frames of `dataset`, or random images and states with
    the instructions `tasks` in turn (default: one LIBERO instruction)."""
    rng = np.random.default_rng(seed)
    if dataset is None:
        size = spec.image_shape[0]
        tasks = tasks or ["pick up the alphabet soup and place it in the basket"]
        return [{**{f"observation.images.{v}": rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for v in spec.views},
                 "observation.state": rng.uniform(-1, 1, spec.state_dim).astype(np.float32),
                 "task": tasks[i % len(tasks)]} for i in range(count)]
    from pokevla.data.reader import DatasetReader

    reader = DatasetReader(dataset)
    rows = np.linspace(0, len(reader) - 1, count).round().astype(int)
    return [{**{f"observation.images.{v}": reader.get(f"observation.images.{v}", int(i)) for v in spec.views},
             "observation.state": reader.get("observation.state", int(i)).astype(np.float32),
             "task": reader.task(int(i))} for i in rows]


def observation_spec(model_dir: Path, config, image_size: int | None) -> ObservationSpec:
    """The images a checkpoint expects: its training data's render size, or `image_size` if given."""
    from pokevla.eval.checkpoints import training_render

    if image_size is None:
        render = training_render(str(model_dir))
        if render is None:
            raise CheckpointError(f"{model_dir} does not record the image size it was trained on (no training.json); "
                                  f"pass --image-size")
        image_size = int(render["resolution"])
    return ObservationSpec(tuple(config.views), (image_size, image_size, 3), config.expert.state_dim)


def checkpoint_metadata(model_dir: Path, config, spec: ObservationSpec, backend: str,
                        weights_sha256: str | None = None) -> dict:
    """What a client learns on connect: the model's identity, its statistics' hash and its I/O."""
    from pokevla.common.config import to_dict
    from pokevla.eval.checkpoints import training_render
    from pokevla.model.checkpoint import STATS, WEIGHTS

    stats = json.loads((model_dir / STATS).read_text())
    expert = config.expert
    return {
        "backend": backend,
        "model": {"preset": config.preset, "weights_sha256": weights_sha256 or file_sha256(model_dir / WEIGHTS),
                  "config_sha256": hashlib.sha256(json.dumps(to_dict(config), sort_keys=True).encode()).hexdigest()},
        "norm_stats_sha256": hashlib.sha256(json.dumps(stats, sort_keys=True).encode()).hexdigest(),
        "action_horizon": expert.chunk_size,
        "action_dim": expert.action_dim,
        "execute_steps": expert.execute_steps or expert.chunk_size,
        "state_dim": spec.state_dim,
        "training_render": training_render(str(model_dir)),
        **spec.describe(),
    }


class TorchBackend:
    name = "torch"

    def __init__(self, model_dir: str | Path, device: str = "cpu", image_size: int | None = None, threads: int = 1):
        from pokevla.model.checkpoint import STATS
        from pokevla.model.pokevla import PokeVLA

        self.model_dir, self.threads = Path(model_dir), threads
        self.source = self.model_dir
        if not (self.model_dir / STATS).is_file():
            raise CheckpointError(f"{self.model_dir} has no {STATS}: a model without normalisation statistics cannot be served")
        self.model = PokeVLA.from_pretrained(self.model_dir, device=device).eval()
        self.spec = observation_spec(self.model_dir, self.model.config, image_size)

    def prepare_thread(self) -> None:
        import torch

        torch.set_num_threads(self.threads)

    def predict(self, observations: list[dict]) -> np.ndarray:
        actions = self.model.predict_action_chunk(stack(observations, self.spec.views))
        return actions.float().cpu().numpy()

    def metadata(self) -> dict:
        return checkpoint_metadata(self.model_dir, self.model.config, self.spec, self.name)
