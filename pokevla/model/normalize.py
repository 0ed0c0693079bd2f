"""Normalisation of the robot state and the actions, from LeRobot-format statistics.

Statistics look like a dataset's `meta/stats.json`:
`{"observation.state": {"mean": [...], "std": [...], "min": [...], "max": [...], "q01": [...], "q99": [...]},
  "action": {...}}`. They are stored in every checkpoint (`stats.json`) and checked against the model's
dimensions when loaded: a missing key or a wrong length is an error, never a silent pass-through.

Modes: `quantiles` maps [q01, q99] to [-1, 1] and clips (OpenVLA-OFT's BOUNDS_Q99), `min_max` maps
[min, max] to [-1, 1], `mean_std` is the z-score, `identity` leaves values as they are. Dimensions
listed in `keep_dims` (the gripper, already +-1) are never changed. `min_range` floors each feature's
scale (half-range or std), so a dimension that hardly varies in the data cannot collapse: values a little
outside its range at evaluation stay distinguishable instead of all clipping to +-1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from pokevla.common.errors import CheckpointError

STATE = "observation.state"
ACTION = "action"
_NEEDS = {"quantiles": ("q01", "q99"), "min_max": ("min", "max"), "mean_std": ("mean", "std"), "identity": ()}
_EPS = 1e-6  # floor of a range or std: constant dimensions must not divide by zero


class Normalizer:
    """Normalises / un-normalises named features; `dims` gives the expected length of each."""

    def __init__(self, stats: Mapping[str, Mapping[str, Sequence[float]]], modes: Mapping[str, str],
                 dims: Mapping[str, int], keep_dims: Mapping[str, Sequence[int]] | None = None,
                 min_range: Mapping[str, float] | None = None):
        self.modes = dict(modes)
        self.min_range = {k: float(v) for k, v in (min_range or {}).items()}
        self.dims = dict(dims)
        self.keep_dims = {k: tuple(v) for k, v in (keep_dims or {}).items()}
        self.stats: dict[str, dict[str, torch.Tensor]] = {}
        for key, mode in self.modes.items():
            if mode not in _NEEDS:
                raise CheckpointError(f"normalisation of {key}: unknown mode {mode!r}; one of {', '.join(_NEEDS)}")
            if mode == "identity":
                continue
            if key not in stats:
                raise CheckpointError(f"normalisation statistics lack {key!r} (have {', '.join(stats) or 'nothing'})")
            self.stats[key] = {}
            for name in _NEEDS[mode]:
                values = stats[key].get(name)
                if values is None:
                    raise CheckpointError(f"normalisation statistics {key!r} lack {name!r} needed by mode {mode}")
                t = torch.as_tensor(values, dtype=torch.float32).flatten()
                if t.numel() != self.dims[key]:
                    raise CheckpointError(f"normalisation statistics {key}.{name} has {t.numel()} values; "
                                          f"the model expects {self.dims[key]}")
                if not torch.isfinite(t).all():
                    raise CheckpointError(f"normalisation statistics {key}.{name} contain NaN or inf")
                self.stats[key][name] = t
        self._raw = {k: {n: torch.as_tensor(v, dtype=torch.float64).flatten().tolist() for n, v in stats[k].items()}
                     for k in self.stats}
        self._affines = {key: self._make_affine(key) for key in self.stats}
        self._on_device: dict[tuple[str, torch.device], tuple[torch.Tensor, torch.Tensor]] = {}

    @classmethod
    def for_model(cls, stats: Mapping, norm_cfg, state_dim: int, action_dim: int) -> "Normalizer":
        """The normaliser a PokeVLA config asks for (`norm_cfg` is its `NormConfig`)."""
        keep = () if norm_cfg.normalize_gripper else (action_dim - 1,)
        return cls(stats, modes={STATE: norm_cfg.state, ACTION: norm_cfg.action},
                   dims={STATE: state_dim, ACTION: action_dim}, keep_dims={ACTION: keep},
                   min_range={STATE: norm_cfg.state_min_range, ACTION: norm_cfg.action_min_range})

    def _spread(self, key: str) -> torch.Tensor:
        """The data's scale of each dim of `key` before any floor: half the range, or the std."""
        mode, s = self.modes[key], self.stats[key]
        if mode == "mean_std":
            return s["std"]
        lo, hi = (s["q01"], s["q99"]) if mode == "quantiles" else (s["min"], s["max"])
        return (hi - lo) / 2

    def widened_dims(self, key: str) -> list[int]:
        """Dims of `key` whose spread in the data is below its floor (`min_range`), so scaled by the floor."""
        if key not in self.stats:
            return []
        floor, keep = self.min_range.get(key, 0.0), set(self.keep_dims.get(key, ()))
        return [d for d, v in enumerate(self._spread(key).tolist()) if v < floor and d not in keep]

    def _make_affine(self, key: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(offset, scale) with normalised = (x - offset) / scale, on the CPU."""
        mode, s = self.modes[key], self.stats[key]
        scale = self._spread(key).clamp_min(max(_EPS, self.min_range.get(key, 0.0)))
        if mode == "mean_std":
            offset = s["mean"]
        else:
            lo, hi = (s["q01"], s["q99"]) if mode == "quantiles" else (s["min"], s["max"])
            offset = (lo + hi) / 2
        keep = list(self.keep_dims.get(key, ()))
        if keep:
            offset, scale = offset.clone(), scale.clone()
            offset[keep], scale[keep] = 0.0, 1.0
        return offset, scale

    def _affine(self, key: str, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The (offset, scale) of `key` on `like`'s device, copied there once (not on every call)."""
        where = (key, like.device)
        if where not in self._on_device:
            self._on_device[where] = tuple(t.to(like.device) for t in self._affines[key])
        return self._on_device[where]

    def _check(self, key: str, x: torch.Tensor) -> None:
        if x.shape[-1] != self.dims[key]:
            raise ValueError(f"{key}: last dimension is {x.shape[-1]}, expected {self.dims[key]}")

    def normalize(self, key: str, x: torch.Tensor) -> torch.Tensor:
        """(..., D) raw -> (..., D) float32 normalised; ranged modes clip to [-1, 1]."""
        self._check(key, x)
        x = x.float()
        if self.modes[key] == "identity":
            return x
        offset, scale = self._affine(key, x)
        y = (x - offset) / scale
        return y if self.modes[key] == "mean_std" else y.clamp(-1.0, 1.0)

    def unnormalize(self, key: str, y: torch.Tensor) -> torch.Tensor:
        """(..., D) normalised -> (..., D) float32 raw."""
        self._check(key, y)
        y = y.float()
        if self.modes[key] == "identity":
            return y
        offset, scale = self._affine(key, y)
        return y * scale + offset

    def to_json(self) -> dict:
        """The statistics in LeRobot's format (only the features this normaliser uses)."""
        return self._raw

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Normalizer) and self.modes == other.modes and self.dims == other.dims
                and self.keep_dims == other.keep_dims and self.min_range == other.min_range and self._raw == other._raw)


def normalisation_warning(normalizer: Normalizer | None) -> str | None:
    """One line naming the dims whose spread in the data was below the floor, or None."""
    if normalizer is None:
        return None
    parts = [f"{key} dims {normalizer.widened_dims(key)} (floor {normalizer.min_range[key]})"
             for key in normalizer.stats if normalizer.widened_dims(key)]
    if not parts:
        return None
    return ("the data barely varies in " + "; ".join(parts) + ": they are scaled by the floor instead of their own "
            "range (set --norm.state-min-range / --norm.action-min-range to change it)")
