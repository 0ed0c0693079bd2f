"""The served model: a tiny checkpoint behind the torch and ONNX backends, LoRA merging, the CLI."""

import json
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

from pokevla.common.errors import CheckpointError
from pokevla.model.config import get_preset
from pokevla.model.processor import InputError
from pokevla.model.pokevla import PokeVLA
from pokevla.model.synthetic import synthetic_stats
from pokevla.serve.backend import TorchBackend, sample_observations
from pokevla.serve.client import PolicyClient
from pokevla.serve.server import ServerConfig, ServerThread

RENDER = {"resolution": 32, "fast_render": True}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.set_num_threads(1)
    config = get_preset("tiny")
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("serve") / "ckpt"
    PokeVLA(config, synthetic_stats(config), training_heads=False).save_pretrained(path)
    (path / "training.json").write_text(json.dumps({"data": {"suite": "libero_object", "render": RENDER,
                                                             "tasks": ["pick up the bowl", "open it"]}}))
    return path


def test_served_actions_equal_in_process_inference(checkpoint):
    backend = TorchBackend(checkpoint)
    observation = sample_observations(backend.spec, None, 1, seed=3)[0]
    expected = backend.model.predict_action_chunk(observation)[0].numpy()
    with ServerThread(backend, ServerConfig(port=0)) as url, PolicyClient(url) as client:
        meta = client.metadata
        actions = client.predict_chunk(observation)
    np.testing.assert_array_equal(actions, expected)
    assert meta["images"]["observation.images.primary"]["shape"] == [32, 32, 3]
    assert meta["training_render"] == RENDER and len(meta["norm_stats_sha256"]) == 64
    assert meta["action_horizon"] == 8 and meta["execute_steps"] == 2  # the tiny preset replans every 2 actions


def test_checkpoints_that_cannot_be_served_are_refused(checkpoint, tmp_path):
    bare = tmp_path / "bare"
    shutil.copytree(checkpoint, bare)
    (bare / "training.json").unlink()
    with pytest.raises(CheckpointError, match="pass --image-size"):
        TorchBackend(bare)
    assert TorchBackend(bare, image_size=48).spec.image_shape == (48, 48, 3)
    (bare / "stats.json").unlink()
    with pytest.raises(CheckpointError, match="no stats.json"):
        TorchBackend(bare, image_size=48)


def test_lora_merging_keeps_the_outputs(tmp_path):
    import dataclasses

    from pokevla.model.lora import merged_copy

    tiny = get_preset("tiny")
    config = dataclasses.replace(tiny, llm=dataclasses.replace(tiny.llm, finetune="lora"))
    torch.manual_seed(1)
    model = PokeVLA(config, synthetic_stats(config), training_heads=False).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)  # trained adapters: B is zero only at initialisation
    merged, count = merged_copy(model)
    assert count > 0 and merged.config.llm.finetune == "full" and model.config.llm.finetune == "lora"
    assert not any("lora_" in n for n, _ in merged.named_parameters())
    obs = {"observation.images.primary": np.full((32, 32, 3), 90, np.uint8),
           "observation.images.wrist": np.full((32, 32, 3), 30, np.uint8),
           "observation.state": np.zeros(8, np.float32), "task": "open the drawer"}
    with torch.no_grad():
        before = model.processor.inference(obs)
        a = model.infer(before["pixel_values"], before["input_ids"], before["attention_mask"], before["state"])
        b = merged.infer(before["pixel_values"], before["input_ids"], before["attention_mask"], before["state"])
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    merged.save_pretrained(tmp_path / "merged")
    PokeVLA.from_pretrained(tmp_path / "merged")  # loads as a plain, fully fine-tuned model


def test_onnx_export_matches_pytorch_and_serves(checkpoint, tmp_path):
    pytest.importorskip("onnxruntime")
    from pokevla.serve.onnx import ExportConfig, OnnxBackend, export_onnx

    report = export_onnx(ExportConfig(str(checkpoint), str(tmp_path / "onnx"), parity_samples=3), progress=lambda *_: None)
    assert report["samples"] == 3 and report["max_abs_error"] <= 1e-4
    parity = json.loads((tmp_path / "onnx/parity.json").read_text())
    assert parity["max_abs_error"] == report["max_abs_error"]
    backend = OnnxBackend(tmp_path / "onnx")
    torch_backend = TorchBackend(checkpoint)
    observations = sample_observations(backend.spec, None, 2, seed=5, tasks=["pick up the bowl", "open it"])
    np.testing.assert_allclose(backend.continuous(observations),
                               torch_backend.model.normalizer.unnormalize(
                                   "action", torch.from_numpy(_normalised(torch_backend, observations))).numpy(), atol=1e-4)
    # the static prompt: 1.5x the longest training instruction (16 bytes), rounded up to 8
    assert json.loads((tmp_path / "onnx/export.json").read_text())["prompt_tokens"] == 24
    with pytest.raises(InputError, match="this model takes at most 24"):
        backend.predict([{**observations[0], "task": "pick up the bowl and then put it into the top drawer"}])
    meta = backend.metadata()
    assert meta["backend"] == "onnx" and meta["model"]["weights_sha256"] == torch_backend.metadata()["model"]["weights_sha256"]
    with pytest.raises(CheckpointError, match="not a `pokevla export onnx` folder"):
        OnnxBackend(checkpoint)


def _normalised(backend, observations):
    from pokevla.serve.backend import stack

    with torch.no_grad():
        batch = backend.model.processor.inference(stack(observations, backend.spec.views))
        return backend.model.infer(batch["pixel_values"], batch["input_ids"], batch["attention_mask"], batch["state"]).numpy()


def test_the_cli_server_stops_cleanly_on_sigterm(checkpoint):
    proc = subprocess.Popen([sys.executable, "-m", "pokevla.cli", "serve", "--checkpoint", str(checkpoint), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    try:
        line = proc.stdout.readline()
        url = line.split(" on ")[1].split()[0]
        with PolicyClient(url) as client:
            assert client.infer(sample_observations(_spec(client.metadata), None, 1)[0])["actions"].shape == (8, 7)
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=30)[0]
    finally:
        proc.kill()
    assert proc.returncode == 0 and "server stopped" in rest and "Traceback" not in rest


def _spec(meta):
    from pokevla.serve.protocol import ObservationSpec

    views = tuple(k.removeprefix("observation.images.") for k in meta["images"])
    return ObservationSpec(views, tuple(next(iter(meta["images"].values()))["shape"]), meta["state_dim"])


def test_a_checkpoint_folder_that_does_not_exist_is_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "pokevla.cli", "serve", "--checkpoint", str(tmp_path / "nope")],
                            capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and result.stderr.startswith("error:")
