"""`pokevla model info` and `pokevla model bench`."""

from __future__ import annotations

import argparse
import json

import pytest

from pokevla.model.commands import register


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="pokevla")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_info_1b_lands_within_5_percent_of_the_paper(capsys):
    assert _run(["model", "info", "--preset", "1b", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert abs(info["inference_vs_paper_pct"]) < 5 and abs(info["total_vs_paper_pct"]) < 5
    parts = info["components"]
    assert parts["vision.dinov2"]["params"] == 304_367_616  # DINOv2-L/14 (518 px position embeddings)
    assert parts["vision.siglip"]["params"] == 412_442_352  # SigLIP-so400m/14 vision tower, no pooling head
    assert parts["language.llm"]["params"] == 494_032_768  # Qwen2.5-0.5B, tied embeddings once
    assert parts["language.llm"]["lora"] > 0 and parts["language.llm"]["trainable"] == parts["language.llm"]["lora"]


def test_info_table(capsys):
    assert _run(["model", "info", "--preset", "tiny", "--expert.num-layers", "3"]) == 0
    out = capsys.readouterr().out
    assert "preset tiny" in out and "expert" in out and "inference model" in out


def test_bench_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert _run(["model", "bench", "--preset", "tiny", "--iters", "3", "--warmup", "1", "--train-batch-size", "2",
                 "--train-iters", "2", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["inference"]["n"] == 3 and result["inference"]["median_ms"] > 0
    assert result["train_step"]["batch_size"] == 2
    assert "predict_action_chunk, batch 1" in capsys.readouterr().out


def test_bench_a_checkpoint_takes_no_config_flags(make_model, tmp_path):
    from pokevla.common.errors import ConfigError

    make_model().save_pretrained(tmp_path / "ckpt")
    assert _run(["model", "bench", "--checkpoint", str(tmp_path / "ckpt"), "--iters", "2", "--warmup", "0",
                 "--train-batch-size", "0"]) == 0
    with pytest.raises(ConfigError, match="drop --preset"):
        _run(["model", "bench", "--checkpoint", str(tmp_path / "ckpt"), "--preset", "tiny"])


def test_info_with_local_backbones_and_a_model_teacher_reads_only_configs(hf_checkpoints, capsys):
    from transformers import Qwen2ForCausalLM

    assert _run(["model", "info", "--preset", "tiny", "--json", "--llm.path", hf_checkpoints["qwen2"],
                 "--geometry.teacher", "model", "--geometry.teacher-path", hf_checkpoints["dinov2"]]) == 0
    parts = json.loads(capsys.readouterr().out)["components"]
    reference = Qwen2ForCausalLM.from_pretrained(hf_checkpoints["qwen2"])
    assert parts["language.llm"]["params"] == sum(p.numel() for p in reference.parameters())
    assert parts["geometry.projector"]["params"] == (64 * 64 + 64) + (64 * 48 + 48)  # LLM width 64 -> teacher's 48
