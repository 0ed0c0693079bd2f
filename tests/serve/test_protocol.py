import re

import msgpack
import numpy as np
import pytest

from pokevla.serve.protocol import ProtocolError, build_array, decode_request, pack, unpack, unpack_frame

from .conftest import SPEC, observation


def test_arrays_round_trip_in_openpis_encoding():
    message = {"actions": np.arange(56, dtype=np.float32).reshape(8, 7), "n": np.int64(3), "s": "x"}
    frame = pack(message)
    raw = msgpack.unpackb(frame, raw=False, strict_map_key=False)
    assert raw["actions"][b"__ndarray__"] is True and raw["actions"][b"dtype"] == "<f4"  # bin keys, as openpi
    back = unpack(frame)
    np.testing.assert_array_equal(back["actions"], message["actions"])
    assert back["n"] == 3 and back["s"] == "x"


def test_object_arrays_are_never_sent():
    with pytest.raises(TypeError, match="dtype object"):
        pack({"x": np.array([object()], dtype=object)})


@pytest.mark.parametrize("openpi_keys", [False, True])
def test_a_request_under_either_key_set_decodes_to_pokevla_keys(openpi_keys):
    obs, rid = decode_request(unpack_frame(pack({**observation(0.5, openpi_keys), "request_id": 7})), SPEC)
    assert rid == 7 and obs["task"] == "pick up the bowl"
    assert obs["observation.images.wrist"].shape == (16, 16, 3) and obs["observation.state"].dtype == np.float32
    assert obs["observation.images.primary"].flags.writeable  # copied out of the frame


def _error(message) -> ProtocolError:
    with pytest.raises(ProtocolError) as e:
        decode_request(unpack_frame(pack(message)), SPEC)
    return e.value


@pytest.mark.parametrize("change, field, text", [
    ({"observation.state": np.zeros(7, np.float32)}, "observation.state", r"shape \(7,\) does not match the expected \(8,\)"),
    ({"observation.state": np.zeros(8, np.int32)}, "observation.state", "dtype int32 not accepted; expected float32 or float64"),
    ({"observation.state": np.array([np.nan] * 8, np.float32)}, "observation.state", "NaN or inf"),
    ({"observation.images.primary": np.zeros((16, 16, 3), np.float32)}, "observation.images.primary", "expected uint8"),
    ({"observation.images.primary": np.zeros((8, 8, 3), np.uint8)}, "observation.images.primary", r"expected \(16, 16, 3\)"),
    ({"observation.images.primary": [1, 2, 3]}, "observation.images.primary", "expected an array"),
    ({"task": ""}, "task", "non-empty string"),
    ({"task": 5}, "task", "non-empty string"),
    ({"extra": 1}, "extra", "unknown key 'extra'"),
    ({"observation/state": np.zeros(8, np.float32)}, "observation.state", "not under both"),
    ({"request_id": [1]}, "request_id", "string or an integer"),
])
def test_each_bad_field_is_named(change, field, text):
    error = _error({**observation(), **change})
    assert error.field == field and error.code == "bad_request"
    assert re.search(text, str(error))


def test_missing_fields_say_which_keys_are_accepted():
    message = observation()
    del message["observation.images.wrist"]
    assert "'observation.images.wrist' or 'observation/wrist_image'" in str(_error(message))


def test_declared_shapes_are_checked_before_an_array_is_built():
    huge = {b"__ndarray__": True, b"data": b"\0" * 16, b"dtype": "|u1", b"shape": [1 << 20, 1 << 20, 3]}
    assert "does not match the expected (16, 16, 3)" in str(_error({**observation(), "observation.images.primary": huge}))
    with pytest.raises(ProtocolError, match="elements exceed"):
        build_array(unpack_frame(pack(huge)), "x", ("uint8",))
    with pytest.raises(ProtocolError, match="data holds 16 bytes"):
        build_array(unpack_frame(pack({**huge, b"shape": [4, 4, 3]})), "x", ("uint8",))
    with pytest.raises(ProtocolError, match="unknown dtype"):
        build_array(unpack_frame(pack({**huge, b"dtype": "not-a-dtype"})), "x", ("uint8",))
    with pytest.raises(ProtocolError, match="dtype object not accepted"):
        build_array(unpack_frame(pack({**huge, b"dtype": "|O"})), "x", ("uint8",))


def test_frames_that_are_not_msgpack_maps():
    with pytest.raises(ProtocolError, match="text frames"):
        unpack_frame("{}")
    with pytest.raises(ProtocolError, match="not a msgpack message"):
        unpack_frame(b"\xc1")
    with pytest.raises(ProtocolError, match="exceeds the 10-byte limit"):
        unpack_frame(b"\0" * 11, max_bytes=10)
    with pytest.raises(ProtocolError, match="a map of observation fields"):
        decode_request(unpack_frame(pack([1, 2])), SPEC)
