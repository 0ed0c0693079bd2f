"""`pokevla pretrain` through the shared loop, its resume, `pokevla vlm`, and stage 2 from stage 1 (`train --init`)."""

import gzip
import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from pokevla.cli import main
from pokevla.model.lora import merge_adapters
from pokevla.model.pokevla import PokeVLA
from pokevla.pretrain import loop
from pokevla.pretrain.config import PretrainConfig
from pokevla.pretrain.transfer import TRANSFERRED, load_stage1
from pokevla.pretrain.vlm import PokeVLM
from pokevla.train import checkpoints as ckpt

from .test_vlm import (COLOURS, QUESTION, SMALL_FLAGS, colour_records, knowledge, one_thread,  # noqa: F401
                       qwen_config, qwen_folder, small, write_knowledge)  # (fixtures)


def cfg(data, out, steps=4, **kw) -> PretrainConfig:
    return PretrainConfig(data=str(data), out=str(out), steps=steps, batch_size=2, save_every=2, val_every=2,
                          log_every=1, lr=1e-3, **kw)


def weights(checkpoint):
    return load_file(str(checkpoint / "model.safetensors"))


@pytest.fixture
def stage1(knowledge, tmp_path):  # noqa: F811
    """A finished stage-1 run (tiny, LoRA on the language model)."""
    loop.pretrain(cfg(knowledge, tmp_path / "stage1", train="lora"), small(), resume=False, progress=False)
    return tmp_path / "stage1"


def test_pretrain_cli_trains_skips_a_bad_record_and_measures_the_held_out_loss(knowledge, tmp_path, capsys):  # noqa: F811
    with open(knowledge / "train.jsonl", "a") as f:
        f.write("{broken\n")
    run = tmp_path / "run"
    assert main(["pretrain", "--preset", "tiny", *SMALL_FLAGS, "--data", str(knowledge), "--out", str(run),
                 "--steps", "4", "--batch-size", "2", "--save-every", "2", "--val-every", "2", "--lr", "1e-3",
                 "--augment-crop", "0.5", "--augment-color", "0.1"]) == 0
    out, err = capsys.readouterr()
    assert f"{knowledge / 'train.jsonl'} line 5: not valid JSON; record skipped" in err
    assert "1 training record(s) skipped; 4 used" in err
    assert "pretrain:\n  out:" in out and f"  data: '{knowledge}'" in out and "held-out loss" in out
    info = json.loads((run / "run.json").read_text())
    assert info["pretrain"]["steps"] == 4 and info["model"]["preset"] == "tiny" and info["data"]["skipped"] == 1
    assert (info["pretrain"]["augment_crop"], info["pretrain"]["augment_color"]) == (0.5, 0.1)
    assert [json.loads(line)["step"] for line in (run / "val.jsonl").read_text().splitlines()] == [2, 4]
    model = PokeVLM.from_pretrained(ckpt.last_checkpoint(run))
    assert model.trains == "llm" and isinstance(model.generate([], "Hello?", 3), str)


def test_resume_equals_an_uninterrupted_run(knowledge, tmp_path, monkeypatch):  # noqa: F811
    loop.pretrain(cfg(knowledge, tmp_path / "straight"), small(), resume=False, progress=False)
    real_save = ckpt.save_checkpoint

    def save_then_crash(*args, **kwargs):
        real_save(*args, **kwargs)
        raise KeyboardInterrupt  # killed right after the first checkpoint (step 2)

    monkeypatch.setattr(ckpt, "save_checkpoint", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        loop.pretrain(cfg(knowledge, tmp_path / "broken"), small(), resume=False, progress=False)
    monkeypatch.setattr(ckpt, "save_checkpoint", real_save)
    assert ckpt.last_checkpoint(tmp_path / "broken").name == "step_0000002"
    assert loop.pretrain(cfg(knowledge, tmp_path / "broken"), small(), resume=True, progress=False)["step"] == 4
    straight = weights(tmp_path / "straight/checkpoints/step_0000004")
    resumed = weights(tmp_path / "broken/checkpoints/step_0000004")
    assert straight.keys() == resumed.keys()
    changed = [k for k in straight if not torch.equal(straight[k], weights(tmp_path / "straight/checkpoints/step_0000002")[k])]
    assert changed  # the steps after the resume point did something
    for name in straight:
        torch.testing.assert_close(resumed[name], straight[name], rtol=1e-5, atol=1e-6, msg=name)


def test_the_untrained_baseline_answers_and_is_scored(knowledge, tmp_path, capsys):  # noqa: F811
    baseline = tmp_path / "baseline"
    assert main(["vlm", "init", "--preset", "tiny", *SMALL_FLAGS, "--out", str(baseline)]) == 0
    assert main(["vlm", "ask", "--checkpoint", str(baseline), "--image", str(knowledge / "images/red.png"),
                 "--question", "What colour is the picture?", "--max-new-tokens", "4"]) == 0
    capsys.readouterr()
    result = tmp_path / "scores.json"
    assert main(["vlm", "eval", "--checkpoint", str(baseline), "--data", str(knowledge), "--split", "heldout",
                 "--limit", "3", "--max-new-tokens", "4", "--json", str(result)]) == 0
    assert "| colour |" in capsys.readouterr().out
    scores = json.loads(result.read_text())
    assert scores["result"]["families"]["colour"]["n"] == 3 and len(scores["answers"]) == 3


def test_eval_scores_only_the_families_asked_for(tmp_path, capsys):
    root = tmp_path / "two_families"
    colours = colour_records(root)
    shades = [{**r, "id": f"s{i}", "family": "shade"} for i, r in enumerate(colours)]
    write_knowledge(root, {"heldout": colours + shades})
    baseline = tmp_path / "baseline"
    assert main(["vlm", "init", "--preset", "tiny", *SMALL_FLAGS, "--out", str(baseline)]) == 0
    result = tmp_path / "scores.json"
    assert main(["vlm", "eval", "--checkpoint", str(baseline), "--data", str(root), "--families", "shade",
                 "--limit", "2", "--max-new-tokens", "2", "--json", str(result)]) == 0
    scores = json.loads(result.read_text())
    assert list(scores["result"]["families"]) == ["shade"] and scores["result"]["families"]["shade"]["n"] == 2
    assert [a["id"] for a in scores["answers"]] == ["s0", "s1"]  # the limit counts the chosen family's records


def test_score_rescores_saved_answers_and_those_of_another_model(knowledge, tmp_path, capsys):  # noqa: F811
    baseline = tmp_path / "baseline"
    assert main(["vlm", "init", "--preset", "tiny", *SMALL_FLAGS, "--out", str(baseline)]) == 0
    evaluated = tmp_path / "eval.json"
    assert main(["vlm", "eval", "--checkpoint", str(baseline), "--data", str(knowledge), "--split", "heldout",
                 "--max-new-tokens", "4", "--json", str(evaluated)]) == 0
    capsys.readouterr()
    rescored = tmp_path / "rescored.json"
    assert main(["vlm", "score", "--answers", str(evaluated), "--data", str(knowledge), "--split", "heldout",
                 "--json", str(rescored)]) == 0
    assert json.loads(rescored.read_text())["result"] == json.loads(evaluated.read_text())["result"]
    assert all(a["question"].endswith(QUESTION) for a in json.loads(evaluated.read_text())["answers"])
    # baselines drawn from a training set that always said "red"
    trained_on = tmp_path / "trained_on"
    write_knowledge(trained_on, {"train": [{**r, "target": "red"} for r in colour_records(trained_on)]})
    assert main(["vlm", "score", "--answers", str(evaluated), "--data", str(knowledge), "--split", "heldout",
                 "--reference", str(trained_on), "--json", str(rescored)]) == 0
    scores = json.loads(rescored.read_text())
    assert scores["reference"] == [str(trained_on / "train.jsonl")]
    assert scores["result"]["families"]["colour"]["fixed"] == pytest.approx(1 / len(COLOURS))
    # another model's answers, gzipped JSON lines, to some of the records: those are scored
    heldout = [json.loads(line) for line in (knowledge / "heldout.jsonl").read_text().splitlines()]
    lines = [json.dumps({"id": r["id"], "answer": r["conversations"][1]["value"]}) for r in heldout[:2]]
    other = tmp_path / "other.jsonl.gz"
    with gzip.open(other, "wt") as f:
        f.write("\n".join(lines) + "\n\n")
    assert main(["vlm", "score", "--answers", str(other), "--data", str(knowledge), "--split", "heldout"]) == 0
    out, err = capsys.readouterr()
    assert f"2 answered record(s) of {len(heldout)}" in err and "| colour | exact match | 2 | 1.000 |" in out


def test_bad_answers_to_score_are_one_line(knowledge, tmp_path, bad_input):  # noqa: F811
    def answers(name, text):
        (tmp_path / name).write_text(text)
        return ["vlm", "score", "--answers", tmp_path / name, "--data", knowledge, "--split", "heldout"]

    bad_input(["vlm", "score", "--answers", tmp_path / "none.jsonl", "--data", knowledge], "cannot be read")
    bad_input(answers("broken.jsonl", '{"id": "a", "answer": "x"}\n{oops\n'), "line 2: not valid JSON")
    bad_input(answers("shape.jsonl", '{"id": "a", "answer": 3}\n'), 'line 1 is not {"id": str, "answer": str}')
    bad_input(answers("twice.jsonl", '{"id": "a", "answer": "x"}\n{"id": "a", "answer": "y"}\n'), "answered twice")
    bad_input(answers("empty.jsonl", "\n"), "holds no answer")
    bad_input(answers("stray.jsonl", '{"id": "nobody", "answer": "x"}\n'),
              "1 answer(s) to records")
    bad_input(answers("asked.jsonl", '{"id": "c-red", "question": "How big is it?", "answer": "x"}\n'),
              "'c-red' was answered for another question ('How big is it?'")
    bad_input([*answers("fine.jsonl", '{"id": "c-red", "answer": "red"}\n'), "--reference", tmp_path / "none"],
              str(tmp_path / "none"))


def test_init_gives_stage2_the_stage1_weights(stage1, tmp_path):
    folder = ckpt.last_checkpoint(stage1)
    vlm = PokeVLM.from_pretrained(folder)
    merge_adapters(vlm)
    expected = {k: v for k, v in vlm.state_dict().items() if k.startswith(TRANSFERRED)}
    torch.manual_seed(1)
    from pokevla.model.synthetic import synthetic_stats

    vla = PokeVLA(small(), synthetic_stats(small()), backbones=vlm.backbones, load_weights=False,
                  tokenizer=vlm.tokenizer)
    before = {k: v.clone() for k, v in vla.state_dict().items() if k.startswith("expert.")}
    started = load_stage1(vla, folder)
    state = vla.state_dict()
    assert all(torch.equal(state[k], v) for k, v in expected.items()) and len(expected) > 20
    assert all(torch.equal(state[k], v) for k, v in before.items())  # the action expert starts fresh
    assert started["path"] == str(folder) and len(started["sha256"]) == 64


def test_train_init_records_its_start_and_resumes_without_it(stage1, make_dataset, tmp_path, capsys, bad_input):
    demos, _ = make_dataset(tmp_path / "demos", [5, 6], ["pick up the bowl", "open the drawer"], resolution=32)
    run = tmp_path / "vla"
    base = ["train", "--dataset", str(demos), "--init", str(stage1), "--batch-size", "2", "--val-episodes", "0",
            "--vision.finetune", "frozen", "--llm.finetune", "lora"]
    bad_input([*base, "--preset", "1b", "--out", str(run)],
              "was pre-trained with preset tiny, not 1b; use --preset tiny", untouched=[run])
    assert main([*base, "--preset", "tiny", *SMALL_FLAGS, "--out", str(run), "--steps", "1"]) == 0
    info = json.loads((run / "run.json").read_text())
    source = ckpt.last_checkpoint(stage1)
    assert info["init"]["path"] == str(source) and info["train"]["init"] == str(stage1)
    # frozen encoders and a LoRA-wrapped language model keep the stage-1 weights through a step
    vlm = PokeVLM.from_pretrained(source)
    merge_adapters(vlm)
    stage1_state, stage2_state = vlm.state_dict(), weights(ckpt.last_checkpoint(run))
    for name, value in stage2_state.items():
        if name.startswith(("vision.", "language.llm.")) and "lora_" not in name:
            assert torch.equal(value, stage1_state[name.replace(".base_layer", "")]), name
    capsys.readouterr()
    assert main(["train", "--out", str(run), "--resume", "--init", str(stage1)]) == 2
    assert "drop --init" in capsys.readouterr().err
    # a longer schedule resumes from the run's own checkpoint even with the stage-1 run gone
    recorded = json.loads((run / "run.json").read_text())
    recorded["train"]["steps"] = 2
    (run / "run.json").write_text(json.dumps(recorded))
    shutil.rmtree(stage1)
    assert main(["train", "--out", str(run), "--resume"]) == 0
    assert ckpt.last_checkpoint(run).name == "step_0000002"
    assert json.loads((run / "run.json").read_text())["init"] == info["init"]


def test_pretrain_init_continues_from_an_earlier_run_and_resumes_without_it(stage1, knowledge, tmp_path, capsys,  # noqa: F811
                                                                           bad_input):
    run = tmp_path / "aligned"
    base = ["pretrain", "--data", str(knowledge), "--init", str(stage1), "--train", "projector", "--steps", "1",
            "--batch-size", "2", "--save-every", "1", "--val-every", "1"]
    bad_input([*base, "--preset", "1b", "--out", str(run)],
              "was pre-trained with preset tiny, not 1b; use --preset tiny", untouched=[run])
    assert main([*base, "--preset", "tiny", *SMALL_FLAGS, "--out", str(run)]) == 0
    source = ckpt.last_checkpoint(stage1)
    info = json.loads((run / "run.json").read_text())
    assert info["init"]["path"] == str(source) and info["pretrain"]["init"] == str(stage1)
    # the stage-1 LoRA is merged; with only the projector training, everything else is still stage 1's
    vlm = PokeVLM.from_pretrained(source)
    merge_adapters(vlm)
    before, after = vlm.state_dict(), weights(ckpt.last_checkpoint(run))
    frozen = [k for k in after if k.startswith(("vision.", "language.llm."))]
    assert len(frozen) > 20 and all(torch.equal(after[k], before[k]) for k in frozen)
    assert any(not torch.equal(after[k], before[k]) for k in after if k.startswith("projector."))
    assert PokeVLM.from_pretrained(ckpt.last_checkpoint(run)).trains == "projector"
    recorded = json.loads((run / "run.json").read_text())
    recorded["pretrain"]["steps"] = 2
    (run / "run.json").write_text(json.dumps(recorded))
    shutil.rmtree(stage1)
    capsys.readouterr()
    assert main(["pretrain", "--out", str(run), "--resume"]) == 0
    assert ckpt.last_checkpoint(run).name == "step_0000002"
    assert json.loads((run / "run.json").read_text())["init"] == info["init"]


def test_the_qwen_path_pretrains_and_answers(knowledge, qwen_folder, tmp_path):  # noqa: F811
    summary = loop.pretrain(cfg(knowledge, tmp_path / "qwen_run", steps=2), qwen_config(qwen_folder), resume=False,
                            progress=False)
    model = PokeVLM.from_pretrained(summary["checkpoint"])
    assert model.config.llm.path == qwen_folder and model.chat.end_of_turn == model.tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert model.tokenizer.chat_template.startswith("{% if messages[0]['role'] != 'system' %}")
    assert isinstance(model.generate([], "Which is bigger?", 4), str)


@pytest.mark.parametrize("flags, text", [
    (["--steps", "0"], "--steps must be at least 1, got 0"),
    (["--lr", "0"], "--lr must be positive"),
    (["--data", "{tmp}/nowhere"], "knowledge source {tmp}/nowhere does not exist"),
    (["--mix", "{data}=1"], "give --data or --mix, not both"),
    (["--augment-crop", "0.05"], "--augment-crop 0.05 is out of range; use 0.1-1"),
    (["--augment-color", "1.5"], "--augment-color 1.5 is out of range"),
])
def test_bad_pretrain_input_is_one_line_before_the_run_folder_exists(flags, text, knowledge, tmp_path, bad_input):  # noqa: F811
    run = tmp_path / "run"
    fill = lambda s: s.replace("{tmp}", str(tmp_path)).replace("{data}", str(knowledge))  # noqa: E731
    argv = ["pretrain", "--preset", "tiny", "--data", str(knowledge), "--out", str(run), *map(fill, flags)]
    bad_input(argv, fill(text), untouched=[run])


def test_bad_vlm_input_is_one_line(knowledge, tmp_path, bad_input):  # noqa: F811
    model = tmp_path / "baseline"
    assert main(["vlm", "init", "--preset", "tiny", *SMALL_FLAGS, "--out", str(model)]) == 0
    bad_input(["vlm", "ask", "--checkpoint", model, "--image", tmp_path / "none.png", "--question", "?"],
              f"--image {tmp_path / 'none.png'}: no such file")
    bad_input(["vlm", "ask", "--checkpoint", tmp_path / "nothing", "--question", "?"], "neither a training run")
    bad_input(["vlm", "eval", "--checkpoint", model, "--data", knowledge, "--limit", "-1"], "--limit must be at least 0")
    bad_input(["vlm", "eval", "--checkpoint", model, "--data", knowledge, "--families", "colour,shape"],
              "--families: shape not in")
    bad_input(["vlm", "init", "--preset", "tiny", "--out", model], "is not empty")
