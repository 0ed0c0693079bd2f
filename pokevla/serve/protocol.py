"""The wire format between a robot and `pokevla serve`: binary msgpack frames, no pickle.

Importable with numpy and msgpack alone (the robot side has no torch). Compatible with openpi's
client: arrays travel as maps `{"__ndarray__": True, "data": bytes, "dtype": "<f4", "shape": [...]}`
(keys as msgpack bin, as openpi writes them; text keys are accepted too) and numpy scalars as
`{"__npgeneric__": True, "data": value, "dtype": ...}`.

A connection is: the server sends its metadata (`metadata_message`), then lockstep request /
response. A request is one observation:

    images   uint8 (H, W, 3) per view, H and W as the metadata's `images` say
    state    float (D_state,), finite
    prompt   str, the instruction
    request_id  optional str or int, echoed in the response

under PokeVLA's keys (`observation.images.<view>`, `observation.state`, `task`) or openpi's
(`observation/image`, `observation/wrist_image`, `observation/state`, `prompt`). A response is
`{"actions": float32 (H, D_action), "server_timing": {...}, "request_id"?}`; a failure is
`{"error": {"code", "field", "message"}, "request_id"?}` and the connection stays open.

Decoding never builds an array before its field's dtype and shape were checked: the msgpack hook
only marks encoded arrays (`EncodedArray`), and `decode_request` validates each named field.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import msgpack
import numpy as np

PROTOCOL_VERSION = "pokevla-serve/1"
DEFAULT_MAX_FRAME_BYTES = 8 << 20  # 2 views of 1024x1024x3 uint8 fit; a 1 GB "observation" does not
ALLOWED_KINDS = "biuf"  # bool, signed / unsigned ints, floats: never object (pickle), void or complex
MAX_PROMPT_CHARS = 2000
OPENPI_IMAGE_KEYS = ("observation/image", "observation/wrist_image")  # openpi's LIBERO keys, in view order
OPENPI_STATE_KEY, OPENPI_PROMPT_KEY = "observation/state", "prompt"


class ProtocolError(ValueError):
    """A message that does not follow the protocol; `field` names the part that is wrong."""

    def __init__(self, message: str, field: str | None = None, code: str = "bad_request"):
        super().__init__(message)
        self.field, self.code = field, code

    def to_message(self, request_id: Any = None) -> dict:
        out: dict = {"error": {"code": self.code, "field": self.field, "message": str(self)}}
        if request_id is not None:
            out["request_id"] = request_id
        return out


@dataclass(frozen=True)
class EncodedArray:
    """An array as it arrived: not yet trusted, not yet built."""

    data: Any
    dtype: Any
    shape: Any
    scalar: bool = False


def _get(obj: dict, name: str):
    return obj.get(name.encode(), obj.get(name))


def _mark_arrays(obj: dict):
    if _get(obj, "__ndarray__") is True:
        return EncodedArray(_get(obj, "data"), _get(obj, "dtype"), _get(obj, "shape"))
    if _get(obj, "__npgeneric__") is True:
        return EncodedArray(_get(obj, "data"), _get(obj, "dtype"), (), scalar=True)
    return obj


def _encode_numpy(obj):
    if isinstance(obj, (np.ndarray, np.generic)) and obj.dtype.kind not in ALLOWED_KINDS:
        raise TypeError(f"arrays of dtype {obj.dtype} are not sent (only bool, int and float)")
    if isinstance(obj, np.ndarray):
        return {b"__ndarray__": True, b"data": np.ascontiguousarray(obj).tobytes(), b"dtype": obj.dtype.str,
                b"shape": list(obj.shape)}
    if isinstance(obj, np.generic):
        return {b"__npgeneric__": True, b"data": obj.item(), b"dtype": obj.dtype.str}
    raise TypeError(f"cannot send a {type(obj).__name__}")


def pack(obj: Any) -> bytes:
    """A message (dicts, lists, str, numbers, numpy arrays) -> one binary frame."""
    return msgpack.packb(obj, default=_encode_numpy, use_bin_type=True)


def unpack_frame(frame: Any, max_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> Any:
    """One received frame -> the message, arrays still `EncodedArray`. Raises ProtocolError."""
    if isinstance(frame, str):
        raise ProtocolError("text frames are not accepted: send msgpack as a binary frame", code="bad_frame")
    if len(frame) > max_bytes:
        raise ProtocolError(f"frame of {len(frame)} bytes exceeds the {max_bytes}-byte limit", code="too_large")
    try:
        return msgpack.unpackb(frame, object_hook=_mark_arrays, raw=False, strict_map_key=False,
                               max_bin_len=max_bytes, max_str_len=max_bytes, max_array_len=1 << 16,
                               max_map_len=1 << 10, max_ext_len=0)
    except Exception as e:  # msgpack raises several types (ExtraData, FormatError, ValueError, recursion...)
        raise ProtocolError(f"not a msgpack message ({type(e).__name__})", code="bad_frame") from None


def _dtype_of(value: EncodedArray) -> np.dtype:
    return np.dtype(value.dtype if isinstance(value.dtype, str) else bytes(value.dtype).decode())


def build_array(value: Any, field: str, dtypes: tuple[str, ...], shape: tuple[int | None, ...] | None = None,
                max_elements: int = 1 << 24) -> np.ndarray:
    """Checks an `EncodedArray` (dtype one of `dtypes`, `shape` with None wildcards) and builds it.

    Copies the bytes, so the array is writable and does not pin the frame."""
    if not isinstance(value, EncodedArray):
        raise ProtocolError(f"expected an array (msgpack-numpy map with __ndarray__), got {type(value).__name__}", field)
    try:
        dtype = _dtype_of(value)
    except Exception:
        raise ProtocolError(f"unknown dtype {value.dtype!r}", field) from None
    if dtype.kind not in ALLOWED_KINDS or dtype.name not in dtypes:
        raise ProtocolError(f"dtype {dtype} not accepted; expected {' or '.join(dtypes)}", field)
    if value.scalar:
        raise ProtocolError("expected an array, got a numpy scalar", field)
    dims = value.shape
    if not isinstance(dims, (list, tuple)) or len(dims) > 8 or not all(
            isinstance(d, int) and not isinstance(d, bool) and 0 <= d for d in dims):
        raise ProtocolError(f"shape must be a list of at most 8 non-negative ints, got {dims!r}", field)
    dims = tuple(dims)
    if shape is not None and (len(dims) != len(shape) or any(s is not None and s != d for s, d in zip(shape, dims))):
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
        raise ProtocolError(f"shape {dims} does not match the expected {want}", field)
    count = math.prod(dims)
    if count > max_elements:
        raise ProtocolError(f"{count} elements exceed the limit of {max_elements}", field)
    if not isinstance(value.data, (bytes, bytearray)) or len(value.data) != count * dtype.itemsize:
        size = len(value.data) if isinstance(value.data, (bytes, bytearray)) else type(value.data).__name__
        raise ProtocolError(f"data holds {size} bytes; shape {dims} of {dtype} needs {count * dtype.itemsize}", field)
    return np.frombuffer(value.data, dtype=dtype).reshape(dims).copy()


def build_scalar_or_plain(value: Any) -> Any:
    """Response values: `EncodedArray` -> numpy (client side, trusted server), others unchanged."""
    if isinstance(value, EncodedArray):
        dtype = _dtype_of(value)
        if dtype.kind not in ALLOWED_KINDS:
            raise ProtocolError(f"dtype {dtype} not accepted")
        if value.scalar:
            return dtype.type(value.data)
        return np.frombuffer(value.data, dtype=dtype).reshape(tuple(value.shape))
    if isinstance(value, dict):
        return {k.decode() if isinstance(k, bytes) else k: build_scalar_or_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [build_scalar_or_plain(v) for v in value]
    return value


def unpack(frame: bytes) -> Any:
    """A frame from a trusted peer (the client reading the server) -> message with numpy arrays."""
    return build_scalar_or_plain(unpack_frame(frame, max_bytes=max(len(frame), 1)))


@dataclass(frozen=True)
class ObservationSpec:
    """What the served model reads: its views' image shapes and the state size."""

    views: tuple[str, ...]
    image_shape: tuple[int, int, int]  # (H, W, 3), the training render
    state_dim: int

    @functools.cached_property
    def image_keys(self) -> dict[str, str]:
        """Request key -> view: PokeVLA's keys and, for the first two views, openpi's."""
        keys = {f"observation.images.{v}": v for v in self.views}
        keys.update({alias: v for alias, v in zip(OPENPI_IMAGE_KEYS, self.views)})
        return keys

    def describe(self) -> dict:
        return {
            "images": {f"observation.images.{v}": {"shape": list(self.image_shape), "dtype": "uint8"} for v in self.views},
            "state": {"key": "observation.state", "shape": [self.state_dim], "dtype": "float32"},
            "prompt": {"key": "task", "type": "str"},
            "aliases": {**{a: f"observation.images.{v}" for a, v in zip(OPENPI_IMAGE_KEYS, self.views)},
                        OPENPI_STATE_KEY: "observation.state", OPENPI_PROMPT_KEY: "task"},
        }


def _request_id(message: dict) -> Any:
    rid = message.get("request_id")
    if rid is None or (isinstance(rid, (str, int)) and not isinstance(rid, bool) and len(str(rid)) <= 128):
        return rid
    raise ProtocolError("request_id must be a string or an integer of at most 128 characters", "request_id")


def request_id_of(message: Any) -> Any:
    """The request id of a message, if it has a valid one (to echo it in an error)."""
    try:
        return _request_id(message) if isinstance(message, dict) else None
    except ProtocolError:
        return None


def _pick(message: dict, names: tuple[str, ...], field: str) -> tuple[str, Any]:
    found = [n for n in names if n in message]
    if not found:
        raise ProtocolError(f"missing {field} (key {' or '.join(repr(n) for n in names)})", field)
    if len(found) > 1:
        raise ProtocolError(f"give {field} once, not under both {found[0]!r} and {found[1]!r}", field)
    return found[0], message[found[0]]


def decode_request(message: Any, spec: ObservationSpec) -> tuple[dict, Any]:
    """An unpacked request -> (observation in PokeVLA's keys with numpy values, request_id)."""
    if not isinstance(message, dict):
        raise ProtocolError(f"a request is a map of observation fields, got {type(message).__name__}")
    rid = _request_id(message)
    known = set(spec.image_keys) | {"observation.state", OPENPI_STATE_KEY, "task", OPENPI_PROMPT_KEY, "request_id"}
    unknown = sorted(str(k) for k in message if k not in known)
    if unknown:
        raise ProtocolError(f"unknown key {unknown[0]!r}; expected {sorted(known)}", unknown[0])
    observation: dict[str, Any] = {}
    for view in spec.views:
        names = tuple(k for k, v in spec.image_keys.items() if v == view)
        key, value = _pick(message, names, f"observation.images.{view}")
        observation[f"observation.images.{view}"] = build_array(value, key, ("uint8",), spec.image_shape)
    key, value = _pick(message, ("observation.state", OPENPI_STATE_KEY), "observation.state")
    state = build_array(value, key, ("float32", "float64"), (spec.state_dim,))
    if not np.isfinite(state).all():
        raise ProtocolError("state holds NaN or inf", key)
    observation["observation.state"] = state.astype(np.float32)
    key, prompt = _pick(message, ("task", OPENPI_PROMPT_KEY), "task")
    if not isinstance(prompt, str) or not prompt.strip() or len(prompt) > MAX_PROMPT_CHARS:
        raise ProtocolError(f"the prompt must be a non-empty string of at most {MAX_PROMPT_CHARS} characters", key)
    observation["task"] = prompt
    return observation, rid
