"""scripts/grow_model.py: deeper encoders and language model that start as the same function, and train on."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pokevla.cli import main
from pokevla.pretrain.vlm import PokeVLM
from pokevla.train import checkpoints as ckpt

from .test_pretrain import stage1  # noqa: F401  (fixture)
from .test_vlm import SMALL_FLAGS, knowledge, one_thread  # noqa: F401  (fixtures)

SCRIPT = Path(__file__).parents[2] / "scripts" / "grow_model.py"


def grow(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True)


def test_the_grown_model_answers_as_the_original_and_pretrains_on(stage1, knowledge, tmp_path):  # noqa: F811
    grown_folder = tmp_path / "grown"
    done = grow(stage1, grown_folder, "--language", 3, "--vision", 2)
    assert done.returncode == 0, done.stderr
    assert "llm 1 -> 3, dinov2 1 -> 2, siglip 1 -> 2 layers, largest logit difference 0.00e+00" in done.stdout
    source, grown = PokeVLM.from_pretrained(ckpt.last_checkpoint(stage1)), PokeVLM.from_pretrained(grown_folder)
    assert grown.config.llm.num_layers == 3 and grown.backbones.llm.num_hidden_layers == 3
    assert grown.config.vision.dinov2.num_layers == grown.config.vision.siglip.num_layers == 2
    assert grown.trains == "llm"  # the source's LoRA is merged into plain layers
    layers = grown.language.llm.model.layers
    assert torch.equal(layers[1].self_attn.q_proj.weight, layers[0].self_attn.q_proj.weight)
    assert not layers[2].mlp.down_proj.weight.any() and layers[0].mlp.down_proj.weight.any()
    assert not grown.vision.dinov2.encoder.layer[1].layer_scale2.lambda1.any()
    assert not grown.vision.siglip.encoder.layers[1].mlp.fc2.weight.any()
    image = np.random.default_rng(0).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    assert grown.generate([image], "What colour is the picture?") == source.generate([image], "What colour is the picture?")

    run = tmp_path / "deeper"
    assert main(["pretrain", "--preset", "tiny", *SMALL_FLAGS, "--data", str(knowledge), "--init", str(grown_folder),
                 "--steps", "2", "--batch-size", "2", "--save-every", "2", "--val-every", "2", "--out", str(run)]) == 0
    trained = PokeVLM.from_pretrained(ckpt.last_checkpoint(run))
    assert len(trained.language.llm.model.layers) == 3 and trained.language.llm.model.layers[2].mlp.down_proj.weight.any()
    assert len(trained.vision.siglip.encoder.layers) == 2


@pytest.mark.parametrize("args, message", [
    (["--language", "1"], "llm has 1 layers: the grown depth must be a larger multiple of it, not 1"),
    ([], "nothing to grow: give --language LAYERS and/or --vision LAYERS"),
])
def test_a_depth_that_does_not_grow_is_one_line(stage1, tmp_path, args, message):  # noqa: F811
    done = grow(stage1, tmp_path / "grown", *args)
    assert done.returncode != 0 and done.stderr.strip().splitlines()[-1] == message
    assert not (tmp_path / "grown").exists()


def test_a_source_that_is_not_a_stage_1_checkpoint_is_one_line(stage1, tmp_path):  # noqa: F811
    done = grow(tmp_path / "nowhere", tmp_path / "grown", "--vision", 2)
    assert done.returncode != 0 and len(done.stderr.strip().splitlines()) == 1 and "nowhere" in done.stderr
    policy = ckpt.last_checkpoint(stage1)
    meta = json.loads((policy / "config.json").read_text())
    del meta["model"]  # what a stage-2 policy's config.json looks like
    (policy / "config.json").write_text(json.dumps(meta))
    done = grow(stage1, tmp_path / "grown", "--vision", 2)
    assert done.returncode != 0 and "is not a stage-1 PokeVLM checkpoint" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "grown").exists()
