"""Bad model settings (`pokevla model info`, `model bench`): one line and exit status 2, before any
model is built."""

import pytest

INFO = ["model", "info", "--preset", "tiny"]
BENCH = ["model", "bench", "--preset", "tiny"]


@pytest.mark.parametrize("flags, text", [
    (["--vision.image-size", "0"], "--vision.image-size must be at least 1, got 0"),
    (["--expert.chunk-size", "0"], "--expert.chunk-size must be at least 1, got 0"),
    (["--llm.num-queries", "0"], "--llm.num-queries must be at least 1, got 0"),
    (["--vision.stem-channels", "16", "0", "64"], "--vision.stem-channels must be at least 1, got 0"),
    (["--llm.num-heads", "3"], "--llm.num-heads 3 does not divide its width 128"),
    (["--llm.num-kv-heads", "3"], "--llm.num-kv-heads 3 must divide --llm.num-heads 4"),
    (["--llm.hidden-size", "120", "--llm.num-heads", "8"], "must be even: rotary position embeddings"),
    (["--vision.dinov2.num-heads", "3"], "--vision.dinov2.num-heads 3 does not divide its width 64"),
    (["--vision.siglip.num-heads", "5"], "--vision.siglip.num-heads 5 does not divide its width 64"),
    (["--expert.num-heads", "3"], "--expert.num-heads 3 does not divide its width 128"),
    (["--seg.num-heads", "3"], "--seg.num-heads 3 does not divide its width 32"),
    (["--expert.execute-steps", "9"], "expert.execute-steps 9 must be 0 (whole chunk) to expert.chunk-size 8"),
])
def test_a_bad_model_config_is_one_line(flags, text, bad_input):
    bad_input([*INFO, *flags], text)


@pytest.mark.parametrize("flags, text", [
    (["--iters", "0"], "--iters must be at least 1, got 0"),
    (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
    (["--image-size", "-1"], "--image-size must be at least 1, got -1"),
    (["--warmup", "-1"], "--warmup must be at least 0, got -1"),
    (["--train-batch-size", "-1"], "--train-batch-size must be at least 0, got -1"),
    (["--threads", "0"], "--threads must be at least 1, got 0"),
    (["--device", "bogus"], "--device 'bogus': use cpu, cuda or cuda:N"),
    (["--json", "/proc/pokevla/bench.json"], "choose another --json"),
    (["--vision.image-size", "0"], "--vision.image-size must be at least 1"),
])
def test_bad_bench_settings_are_refused_before_the_benchmark(flags, text, tmp_path, bad_input):
    result = tmp_path / "bench.json"  # a flag given later (--json /proc/...) overrides it
    bad_input([*BENCH, "--json", result, *flags], text, untouched=[result])
