"""save_pretrained / from_pretrained: one atomic folder, identical predictions, loud mismatches."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from pokevla.common.errors import CheckpointError
from pokevla.model.pokevla import PokeVLA
from pokevla.model.synthetic import synthetic_batch

from .conftest import override


def test_round_trip_gives_identical_predictions_and_losses(make_model, tiny, tmp_path):
    model = make_model().eval()
    model.save_pretrained(tmp_path / "ckpt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no temporary folder left behind
    files = {p.name for p in (tmp_path / "ckpt").iterdir()}
    assert {"config.json", "backbones.json", "model.safetensors", "stats.json", "tokenizer.json"} <= files

    obs = synthetic_batch(tiny, 2, training=False)
    inference = PokeVLA.from_pretrained(tmp_path / "ckpt").eval()
    assert inference.segmentation is None and inference.geometry is None
    assert torch.equal(inference.predict_action_chunk(obs), model.predict_action_chunk(obs))
    assert inference.config == model.config and inference.normalizer == model.normalizer

    training = PokeVLA.from_pretrained(tmp_path / "ckpt", training_heads=True).eval()
    batch = synthetic_batch(tiny, 2)
    assert training(batch)[1] == model(batch)[1]


def test_overwriting_a_checkpoint_replaces_it(make_model, tmp_path):
    make_model(seed=0).save_pretrained(tmp_path / "ckpt")
    second = make_model(seed=1)
    second.save_pretrained(tmp_path / "ckpt")
    loaded = PokeVLA.from_pretrained(tmp_path / "ckpt")
    torch.testing.assert_close(loaded.expert.latents, second.expert.latents)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_round_trip_with_lora_and_local_backbones(make_model, tiny, tmp_path, hf_checkpoints):
    # copy the backbones: the checkpoint must not need them once saved
    for name, path in hf_checkpoints.items():
        shutil.copytree(path, tmp_path / name)
    config = override(tiny, {"vision.dinov2_path": str(tmp_path / "dinov2"),
                             "vision.siglip_path": str(tmp_path / "siglip"), "vision.stem_channels": [],
                             "llm.path": str(tmp_path / "qwen2"), "llm.finetune": "lora", "lora.rank": 4})
    model = make_model(config).eval()
    with torch.no_grad():  # LoRA B starts at zero: make the adapters matter
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.1)
    model.save_pretrained(tmp_path / "ckpt")
    for name in hf_checkpoints:
        shutil.rmtree(tmp_path / name)
    loaded = PokeVLA.from_pretrained(tmp_path / "ckpt").eval()
    obs = synthetic_batch(tiny, 1, training=False)
    assert torch.equal(loaded.predict_action_chunk(obs), model.predict_action_chunk(obs))
    assert loaded.tokenizer("put the bowl")["input_ids"] == model.tokenizer("put the bowl")["input_ids"]


def test_loading_into_a_model_checks_config_and_statistics(make_model, tiny, stats, tmp_path):
    make_model().save_pretrained(tmp_path / "ckpt")
    same = make_model(seed=3)
    same.load_checkpoint(tmp_path / "ckpt")
    other = make_model(override(tiny, {"expert.num_layers": 3}))
    with pytest.raises(CheckpointError, match=r"different config: expert.num_layers 2 \(checkpoint\) vs 3"):
        other.load_checkpoint(tmp_path / "ckpt")
    shifted = json.loads(json.dumps(stats))
    shifted["action"]["q99"][0] = 5.0
    with pytest.raises(CheckpointError, match="differ from the model's normalisation statistics"):
        make_model(stats=shifted).load_checkpoint(tmp_path / "ckpt")


def test_broken_folders_are_clear_errors(make_model, tmp_path):
    make_model().save_pretrained(tmp_path / "ckpt")
    ckpt = tmp_path / "ckpt"
    with pytest.raises(CheckpointError, match="no checkpoint folder"):
        PokeVLA.from_pretrained(tmp_path / "nothing")

    stats = json.loads((ckpt / "stats.json").read_text())
    stats["observation.state"]["q01"] = stats["observation.state"]["q01"][:7]
    (ckpt / "stats.json").write_text(json.dumps(stats))
    with pytest.raises(CheckpointError, match="observation.state.q01 has 7 values; the model expects 8"):
        PokeVLA.from_pretrained(ckpt)
    make_model().save_pretrained(ckpt)

    meta = json.loads((ckpt / "config.json").read_text())
    meta["config"]["expert"]["dim"] = 96  # config no longer matches the weights
    (ckpt / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"model.safetensors does not match the model: shape .*expert\."):
        PokeVLA.from_pretrained(ckpt)

    meta["config"]["expert"]["dim"] = 128
    meta["config"]["llm"]["hidden_size"] = 96
    (ckpt / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="config.json and backbones.json describe different backbones"):
        PokeVLA.from_pretrained(ckpt)

    meta["config"]["llm"]["hidden_size"] = 128
    meta["config"]["unknown"] = 1
    (ckpt / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="unknown key"):
        PokeVLA.from_pretrained(ckpt)

    del meta["config"]["unknown"]
    (ckpt / "config.json").write_text(json.dumps(meta))
    (ckpt / "model.safetensors").write_bytes(b"truncated")
    with pytest.raises(CheckpointError, match="model.safetensors is not a readable safetensors file"):
        PokeVLA.from_pretrained(ckpt)
    (ckpt / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model.safetensors is missing"):
        PokeVLA.from_pretrained(ckpt)


def test_a_model_without_statistics_cannot_be_saved(make_model, tmp_path):
    with pytest.raises(CheckpointError, match="without normalisation statistics"):
        make_model(stats=None).save_pretrained(tmp_path / "ckpt")
    assert not (tmp_path / "ckpt").exists()


def test_training_heads_must_be_in_the_checkpoint_to_continue_training(make_model, tmp_path):
    make_model(training_heads=False).save_pretrained(tmp_path / "ckpt")
    PokeVLA.from_pretrained(tmp_path / "ckpt")
    with pytest.raises(CheckpointError, match=r"no weights for the training heads \(geometry, segmentation\)"):
        PokeVLA.from_pretrained(tmp_path / "ckpt", training_heads=True)


def test_a_checkpoint_saved_before_the_normalisation_floors_keeps_its_normalisation(make_model, tmp_path):
    make_model().save_pretrained(tmp_path / "old")
    path = tmp_path / "old/config.json"
    meta = json.loads(path.read_text())
    for name in ("state_min_range", "action_min_range"):
        del meta["config"]["norm"][name]
    path.write_text(json.dumps(meta))
    loaded = PokeVLA.from_pretrained(tmp_path / "old")
    assert loaded.config.norm.state_min_range == 0.0 and loaded.normalizer.min_range == {
        "observation.state": 0.0, "action": 0.0}


def test_every_checkpoint_file_gets_the_permissions_of_the_umask(make_model, tmp_path):
    import os

    make_model(seed=0).save_pretrained(tmp_path / "ckpt")
    umask = os.umask(0)
    os.umask(umask)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "ckpt").iterdir() if p.is_file()}
    assert "model.safetensors" in modes and set(modes.values()) == {0o666 & ~umask}, modes
    assert (tmp_path / "ckpt").stat().st_mode & 0o777 == 0o777 & ~umask
