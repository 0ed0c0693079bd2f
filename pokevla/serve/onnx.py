"""`pokevla export onnx` and the server's ONNX Runtime backend.

The exported graph is the network only, `PokeVLA.infer`: pixel_values float32 (1, V, 3, S, S),
input_ids / attention_mask int64 (1, L), state float32 (1, D_state) -> normalised actions float32
(1, T, D_action). Shapes are static: S is the model's input size and L = image tokens + the fixed
prompt length + <SEG> + the queries. The processor (crop, resize, normalise, tokenise to the fixed
width) and the un-normalisation run around it exactly as for PyTorch, so both backends read the same
requests. LoRA adapters are merged before export; the graph comes from `torch.onnx.export(dynamo=True)`.

The export folder holds model.onnx, the checkpoint's config, statistics, tokenizer and training
record (so it is served like a checkpoint), export.json (what was exported, from what) and
parity.json (the graph against PyTorch on recorded or random observations).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from pokevla.common.errors import CheckpointError, PokeVLAError
from pokevla.common.io import write_json_atomic
from pokevla.serve.backend import (checkpoint_metadata, file_sha256, observation_spec, sample_observations, stack,
                                   training_tasks)

EXPORT_FORMAT = "pokevla-onnx/1"
INPUTS = ("pixel_values", "input_ids", "attention_mask", "state")
DEFAULT_PROMPT_TOKENS = 128  # without recorded instructions: LIBERO's are at most ~20 BPE tokens, ~90 bytes
COPIED = ("config.json", "backbones.json", "stats.json", "training.json")


@dataclass(frozen=True)
class ExportConfig:
    checkpoint: str
    out: str
    image_size: int | None = None  # the requests' image size; default: the training data's
    prompt_tokens: int | None = None
    dataset: str | None = None  # parity observations from these frames (default: random)
    parity_samples: int = 8
    opset: int = 18


def _require_onnx():
    try:
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        raise PokeVLAError("ONNX export and serving need the onnx extra: pip install -e '.[onnx]'") from None


class _Network(torch.nn.Module):
    """PokeVLA.infer as a module with positional inputs (what the exporter traces)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, pixel_values, input_ids, attention_mask, state):
        return self.model.infer(pixel_values, input_ids, attention_mask, state)


def default_prompt_tokens(model, model_dir: Path) -> int:
    """The static prompt length: the training instructions' longest, with half again as margin
    (rounded up to 8), or DEFAULT_PROMPT_TOKENS when the checkpoint records none. Every padded
    position costs compute in the graph, so a fixed length far above the real prompts is slower."""
    tasks = training_tasks(model_dir)
    if not tasks:
        return DEFAULT_PROMPT_TOKENS
    t = model.processor.fixed_width(1)
    longest = max(len(model.tokenizer(t.template.format(instruction=x.strip().rstrip(".").lower()),
                                      add_special_tokens=False)["input_ids"]) for x in tasks)
    return -(-int(1.5 * longest) // 8) * 8


def export_onnx(cfg: ExportConfig, progress=print) -> dict:
    """Exports, checks parity, writes the folder atomically; returns the parity report."""
    _require_onnx()
    from pokevla.model.lora import merged_copy
    from pokevla.model.pokevla import PokeVLA
    from pokevla.train.checkpoints import resolve_model_dir

    model_dir = resolve_model_dir(cfg.checkpoint)
    model, merged_layers = merged_copy(PokeVLA.from_pretrained(model_dir).eval())
    spec = observation_spec(model_dir, model.config, cfg.image_size)
    c = model.config
    budget = c.llm.max_length - (len(c.views) * c.grid ** 2 + 1 + c.llm.num_queries)
    prompt_tokens = cfg.prompt_tokens or min(default_prompt_tokens(model, model_dir), budget)
    if not 1 <= prompt_tokens <= budget:
        raise PokeVLAError(f"--prompt-tokens must be 1 to {budget} (llm.max_length {c.llm.max_length} minus the image, "
                           f"<SEG> and query tokens), got {prompt_tokens}")
    tokenize = model.processor.fixed_width(prompt_tokens)
    observations = sample_observations(spec, cfg.dataset, cfg.parity_samples, tasks=training_tasks(model_dir))

    def inputs(observation):
        batch = model.processor.inference(observation, "cpu", tokenize=tokenize)
        return tuple(batch[k] for k in INPUTS)

    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        started = time.perf_counter()
        progress(f"exporting {model_dir} ({merged_layers} LoRA layers merged, prompt {prompt_tokens} tokens)...")
        torch.onnx.export(_Network(model), inputs(observations[0]), str(tmp / "model.onnx"), dynamo=True,
                          input_names=list(INPUTS), output_names=["actions"], opset_version=cfg.opset,
                          external_data=False, verbose=False)
        export_s = time.perf_counter() - started
        for name in COPIED:
            if (model_dir / name).is_file():
                shutil.copy2(model_dir / name, tmp / name)
        model.tokenizer.save_pretrained(tmp)
        info = {"format": EXPORT_FORMAT, "source": str(model_dir), "source_weights_sha256": file_sha256(model_dir / "model.safetensors"),
                "image_size": spec.image_shape[0], "prompt_tokens": prompt_tokens, "merged_lora_layers": merged_layers,
                "opset": cfg.opset, "torch": torch.__version__, "export_seconds": round(export_s, 1)}
        write_json_atomic(tmp / "export.json", info)
        backend = OnnxBackend(tmp, threads=1)
        with torch.inference_mode():
            reference = np.concatenate([model.predict_action_chunk(o).numpy() for o in observations])
            continuous = np.concatenate([_continuous(model, inputs(o)) for o in observations])
        ours, ours_continuous = backend.predict(observations), backend.continuous(observations)
        report = {"samples": len(observations), "observations": cfg.dataset or "random",
                  "max_abs_error": float(np.abs(ours_continuous - continuous).max()),
                  "max_abs_error_executed": float(np.abs(ours - reference).max()),
                  "export": {k: v for k, v in asdict(cfg).items() if k not in ("checkpoint", "out")}}
        write_json_atomic(tmp / "parity.json", report)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return report


def _continuous(model, inputs) -> np.ndarray:
    """Raw actions before the gripper logit is thresholded: what parity compares (a sign flip at a
    logit of 1e-7 says nothing about the graph)."""
    from pokevla.model.normalize import ACTION

    return model.normalizer.unnormalize(ACTION, model.infer(*inputs).float()).numpy()


class OnnxBackend:
    name = "onnx"

    def __init__(self, folder: str | Path, threads: int = 1):
        _require_onnx()
        import onnxruntime as ort

        from pokevla.model.checkpoint import read_config
        from pokevla.model.backbones import Backbones
        from pokevla.model.normalize import Normalizer
        from pokevla.model.processor import Processor
        from pokevla.model.tokenizer import load_tokenizer, token_ids

        self.folder = self.source = Path(folder)
        info_path = self.folder / "export.json"
        if not (self.folder / "model.onnx").is_file() or not info_path.is_file():
            raise CheckpointError(f"{self.folder} is not a `pokevla export onnx` folder (no model.onnx / export.json); "
                                  f"export it with: pokevla export onnx --checkpoint RUN --out DIR")
        self.info = json.loads(info_path.read_text())
        if self.info.get("format") != EXPORT_FORMAT:
            raise CheckpointError(f"{self.folder} holds a {self.info.get('format')!r} export, not {EXPORT_FORMAT}")
        if not (self.folder / "stats.json").is_file():
            raise CheckpointError(f"{self.folder} has no stats.json: a model without normalisation statistics cannot be served")
        self.config = read_config(self.folder)
        tokenizer = load_tokenizer(self.folder)
        backbones = Backbones.from_json(json.loads((self.folder / "backbones.json").read_text()))
        e = self.config.expert
        self.normalizer = Normalizer.for_model(json.loads((self.folder / "stats.json").read_text()), self.config.norm,
                                               e.state_dim, e.action_dim)
        self.processor = Processor(self.config, tokenizer, token_ids(tokenizer, backbones.llm.vocab_size), self.normalizer)
        self.tokenize = self.processor.fixed_width(int(self.info["prompt_tokens"]))
        self.spec = observation_spec(self.folder, self.config, int(self.info["image_size"]))
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        self.session = ort.InferenceSession(str(self.folder / "model.onnx"), options, providers=["CPUExecutionProvider"])

    def prepare_thread(self) -> None:
        torch.set_num_threads(1)  # the processor's tensor ops; ONNX Runtime has its own threads

    def _normalised(self, observations: list[dict]) -> torch.Tensor:
        outputs = []
        for observation in observations:  # the graph's batch is 1
            batch = self.processor.inference(stack([observation], self.spec.views), "cpu", tokenize=self.tokenize)
            feeds = {k: batch[k].numpy() for k in INPUTS}
            outputs.append(self.session.run(["actions"], feeds)[0])
        return torch.from_numpy(np.concatenate(outputs))

    def predict(self, observations: list[dict]) -> np.ndarray:
        from pokevla.model.pokevla import raw_actions

        return raw_actions(self._normalised(observations), self.config.expert.gripper, self.normalizer).numpy()

    def continuous(self, observations: list[dict]) -> np.ndarray:
        from pokevla.model.normalize import ACTION

        return self.normalizer.unnormalize(ACTION, self._normalised(observations).float()).numpy()

    def metadata(self) -> dict:
        meta = checkpoint_metadata(self.folder, self.config, self.spec, self.name,
                                   weights_sha256=self.info["source_weights_sha256"])
        meta["model"]["onnx_sha256"] = file_sha256(self.folder / "model.onnx")
        meta["export"] = {k: self.info[k] for k in ("prompt_tokens", "opset", "merged_lora_layers")}
        return meta
