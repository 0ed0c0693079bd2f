"""Which checkpoint an evaluation uses, and whether it was trained for the suite asked for."""

from __future__ import annotations

from pokevla.common.errors import CheckpointError
from pokevla.common.io import read_json
from pokevla.train.checkpoints import resolve_model_dir


def resolve_checkpoint(path: str, suite: str | None) -> str:
    """A run directory or checkpoint folder -> the model folder, refusing a suite it was not trained on
    (`suite` None: several suites are evaluated, e.g. a robustness manifest; no check)."""
    model_dir = resolve_model_dir(path)
    training = model_dir / "training.json"
    if training.exists():
        trained_on = _data(training).get("suite")
        if suite is not None and trained_on is not None and trained_on != suite:
            raise CheckpointError(f"{model_dir} was trained on {trained_on}, not {suite}; evaluate it with --suite {trained_on}")
    return str(model_dir)


def training_render(model_dir: str) -> dict | None:
    """{"resolution", "fast_render"} of the demonstrations a checkpoint was trained on, if recorded."""
    training = resolve_model_dir(model_dir) / "training.json"
    if not training.exists():
        return None
    render = _data(training).get("render")
    return render if isinstance(render, dict) and render.get("resolution") is not None else None


def _data(training) -> dict:
    """The dataset identity a checkpoint's training.json records."""
    data = read_json(training, CheckpointError).get("data", {})
    if not isinstance(data, dict):
        raise CheckpointError(f"{training}: data is not an object; the file is damaged")
    return data
