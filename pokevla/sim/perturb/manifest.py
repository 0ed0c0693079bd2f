"""Robustness manifests: one JSON line per variant, instead of parameters hidden in task names.

Line format:
    {"id": "libero_spatial/t3/camera/0", "suite": "libero_spatial", "task_id": 3, "dimension": "camera",
     "level": 2, "seed": 17, "trial": 0, "instruction": "...", "params": {...spec fields...}}
`trial` is the official init state the episode starts from (LIBERO-Plus uses init state 0); it is
null for distractor layouts, which start from a scene sampled with params.scene_seed. `instruction`
is exactly what the policy receives: the task's instruction or, for language variants, the rewrite.
Lines imported from the official LIBERO-Plus set (`pokevla robustness import-official`) also carry an
"official" block; those with "params": null have no pokevla spec yet and are skipped with its reason.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from pokevla.common.errors import ConfigError, PokeVLAError
from pokevla.common.io import write_text_atomic
from pokevla.sim import suites
from pokevla.sim.perturb.spec import DIMENSIONS, LanguageSpec, LayoutSpec, Perturbation, reset_kwargs, spec_from_dict

REQUIRED = ("id", "suite", "task_id", "dimension", "level", "seed", "trial", "instruction", "params")


@dataclass(frozen=True)
class Variant:
    id: str
    suite: str
    task_id: int
    seed: int
    trial: int | None
    instruction: str
    spec: Perturbation
    official: dict | None = field(default=None, hash=False)  # official name, parameters, files (import-official)

    @property
    def dimension(self) -> str:
        return self.spec.dimension

    @property
    def level(self) -> int:
        return self.spec.level

    def reset_kwargs(self) -> dict:
        """Arguments of `LiberoEnv.reset` for this variant's single episode."""
        return reset_kwargs(self.spec, self.trial)

    @property
    def digest(self) -> str:
        """Identifies the variant's full content: a resumed run never reuses an episode of a changed line."""
        return hashlib.sha256(json.dumps(self.to_json(), sort_keys=True).encode()).hexdigest()[:16]

    def to_json(self) -> dict:
        line = {"id": self.id, "suite": self.suite, "task_id": self.task_id, "dimension": self.dimension,
                "level": self.level, "seed": self.seed, "trial": self.trial, "instruction": self.instruction,
                "params": self.spec.to_dict()}
        return line if self.official is None else line | {"official": self.official}


def parse_line(data: dict) -> Variant:
    """Validates one manifest record; raises ConfigError saying what is wrong."""
    if not isinstance(data, dict):
        raise ConfigError("expected a JSON object")
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise ConfigError(f"missing key(s) {', '.join(missing)}")
    official = data.get("official")
    if isinstance(official, dict) and data["params"] is None:
        why = official.get("reason") or official.get("unsupported") or "it has no pokevla spec"
        raise ConfigError(f"official variant {official.get('name')!r} cannot run here: {why}")
    for key, kind in (("id", str), ("suite", str), ("task_id", int), ("level", int), ("seed", int),
                      ("trial", int | None), ("instruction", str)):
        if not isinstance(data[key], kind) or isinstance(data[key], bool):
            raise ConfigError(f"{key} {data[key]!r} is not {'an integer' if kind is not str else 'a string'}"
                              f"{' or null' if key == 'trial' else ''}")
    if data["dimension"] not in DIMENSIONS:
        raise ConfigError(f"unknown dimension {data['dimension']!r}; choose from {', '.join(DIMENSIONS)}")
    if data["level"] not in (1, 2, 3, 4, 5):
        raise ConfigError(f"level {data['level']!r} is not one of 1-5")
    task = suites.get_task(data["suite"], data["task_id"])  # names a missing suite/task -> SimulatorError
    params = dict(data["params"]) if isinstance(data["params"], dict) else data["params"]
    if isinstance(params, dict) and params.get("level", data["level"]) != data["level"]:
        raise ConfigError(f"params.level {params['level']} differs from level {data['level']}")
    spec = spec_from_dict(data["dimension"], params)
    expected = spec.instruction if isinstance(spec, LanguageSpec) else task.instruction
    if data["instruction"] != expected:
        raise ConfigError(f"instruction {data['instruction']!r} is not the task's (or its rewrite's) {expected!r}")
    trial = data["trial"]
    distractors = isinstance(spec, LayoutSpec) and bool(spec.distractors)
    if distractors != (trial is None):
        raise ConfigError("trial must be null exactly for distractor layouts (they start from a sampled scene)")
    if trial is not None and not 0 <= trial < task.num_init_states:
        raise ConfigError(f"trial {trial} is not an init state of the task (0-{task.num_init_states - 1})")
    return Variant(data["id"], task.suite, task.task_id, data["seed"], trial, data["instruction"], spec,
                   official=official)


def read_manifest(path: str | Path) -> tuple[list[Variant], list[str]]:
    """All valid variants, and one message per bad line ("<file> line N: problem"); bad lines are skipped,
    but a manifest without a valid line is an error."""
    path = Path(path)
    if not path.exists():
        raise PokeVLAError(f"manifest {path} does not exist; write one with `pokevla robustness build`")
    variants, errors, ids = [], [], set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            variant = parse_line(json.loads(line))
            if variant.id in ids:
                raise ConfigError(f"duplicate id {variant.id!r}")
        except json.JSONDecodeError as e:
            errors.append(f"{path.name} line {number}: not valid JSON ({e.msg} at column {e.colno})")
            continue
        except PokeVLAError as e:
            errors.append(f"{path.name} line {number}: {e}")
            continue
        ids.add(variant.id)
        variants.append(variant)
    if not variants:  # nothing to run is a mistake, not a 0/0 result
        first = f" ({errors[0]}{f'; {len(errors) - 1} more bad line(s)' if len(errors) > 1 else ''})" if errors else ""
        raise PokeVLAError(f"manifest {path} holds no valid variant{first}; write one with `pokevla robustness build`")
    return variants, errors


def write_manifest(path: str | Path, variants: list[Variant | dict]) -> None:
    """Variants, or lines already in this format (official variants pokevla cannot run yet)."""
    lines = (v if isinstance(v, dict) else v.to_json() for v in variants)
    write_text_atomic(path, "".join(json.dumps(line) + "\n" for line in lines))
