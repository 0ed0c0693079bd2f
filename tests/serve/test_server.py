"""The server on loopback with the numpy echo backend: errors, batching, load, fuzzing, auth."""

import asyncio
import gc
import random
import threading
import time
import tracemalloc
import urllib.error
import urllib.request

import msgpack
import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.sync.client import connect as sync_connect

from pokevla.serve.client import ConnectError, PolicyClient, ServerError
from pokevla.serve.protocol import PROTOCOL_VERSION, pack, unpack

from .conftest import EchoBackend, observation


def test_metadata_then_actions_and_timing(serve):
    url = serve()
    with PolicyClient(url) as client:
        assert client.metadata["protocol"] == PROTOCOL_VERSION
        assert client.metadata["images"]["observation.images.primary"] == {"shape": [16, 16, 3], "dtype": "uint8"}
        reply = client.infer(observation(0.25, openpi_keys=True))
    assert reply["actions"].dtype == np.float32 and reply["actions"].shape == (8, 7)
    np.testing.assert_allclose(reply["actions"][3], 3.25)
    assert set(reply["server_timing"]) == {"infer_ms", "queue_ms", "batch_size", "total_ms"}


def test_health_endpoint(serve):
    url = serve(api_key="secret")
    with urllib.request.urlopen(url.replace("ws://", "http://") + "/healthz", timeout=5) as r:
        assert r.status == 200 and r.read() == b"OK\n"


def test_an_api_key_is_required_when_set(serve):
    url = serve(api_key="secret")
    with pytest.raises(ConnectError, match="HTTP 401"):
        PolicyClient(url, api_key="wrong", connect_retries=0)
    with PolicyClient(url, api_key="secret") as client:
        assert client.infer(observation())["actions"].shape == (8, 7)


def test_api_key_files_are_read_once_and_checked(tmp_path):
    from pokevla.common.errors import PokeVLAError
    from pokevla.serve.client import read_api_key

    (tmp_path / "key").write_text("  secret\n")
    assert read_api_key(str(tmp_path / "key")) == "secret"
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(PokeVLAError, match="is empty"):
        read_api_key(str(tmp_path / "empty"))
    with pytest.raises(PokeVLAError, match="cannot read the API key file"):
        read_api_key(str(tmp_path / "missing"))


def test_errors_are_structured_and_the_connection_stays_open(serve):
    url = serve()
    with PolicyClient(url) as client:
        with pytest.raises(ServerError, match="shape") as e:
            client.infer({**observation(), "observation.state": np.zeros(3, np.float32)})
        assert e.value.code == "bad_request" and e.value.field == "observation.state"
        with pytest.raises(ServerError, match="inference failed: the model failed") as e:
            client.infer({**observation(), "task": "explode"})
        assert e.value.code == "inference_failed"
        assert client.infer(observation(1.0))["actions"][0, 0] == 1.0


def test_text_frames_and_garbage_get_an_error_not_a_disconnect(serve):
    url = serve()
    with sync_connect(url) as ws:
        unpack(ws.recv())
        ws.send("hello")
        assert unpack(ws.recv())["error"]["code"] == "bad_frame"
        ws.send(b"\xc1\xc1")
        assert unpack(ws.recv())["error"]["code"] == "bad_frame"
        ws.send(pack({**observation(2.0), "request_id": "r1"}))
        reply = unpack(ws.recv())
        assert reply["request_id"] == "r1" and reply["actions"][0, 0] == 2.0


def test_an_oversized_frame_closes_only_that_connection(serve):
    url = serve(max_frame_bytes=1 << 16)
    with sync_connect(url, max_size=None) as ws:
        unpack(ws.recv())
        ws.send(b"\0" * (1 << 17))
        with pytest.raises(Exception):
            ws.recv(timeout=5)
    with PolicyClient(url) as client:
        assert client.infer(observation())["actions"].shape == (8, 7)


def test_concurrent_clients_are_batched_and_each_gets_its_own_answer(serve):
    backend = EchoBackend(delay_s=0.02)
    url = serve(backend, max_batch=8)
    wrong, done = [], []

    def run(k):
        with PolicyClient(url, timeout=30) as client:
            deadline = time.monotonic() + 3.0  # bounded in time
            i = 0
            while time.monotonic() < deadline:
                value = float(1000 * k + i)
                actions = client.infer(observation(value))["actions"]
                if actions[0, 0] != value or actions[7, 6] != value + 7:
                    wrong.append((k, i))
                i += 1
            done.append(i)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(done) == 8 and min(done) > 5 and not wrong
    assert max(backend.batches) > 1 and max(backend.batches) <= 8


def test_pings_are_answered_while_the_model_runs(serve):
    url = serve(EchoBackend(delay_s=1.5))

    async def check():
        async with connect(url) as ws:
            await ws.recv()
            await ws.send(pack(observation()))
            await asyncio.sleep(0.2)
            t0 = time.perf_counter()
            await asyncio.wait_for(await ws.ping(), timeout=1.0)
            pong_s = time.perf_counter() - t0
            reply = unpack(await ws.recv())
            return pong_s, reply

    pong_s, reply = asyncio.run(check())
    assert pong_s < 0.5 and "actions" in reply


def test_the_client_reconnects_in_the_middle_of_an_episode(serve):
    from pokevla.serve.server import ServerConfig, ServerThread

    first = ServerThread(EchoBackend(), ServerConfig(port=0))
    url = first.__enter__()
    client = PolicyClient(url, backoff_s=0.05)
    assert client.infer(observation(1.0))["actions"][0, 0] == 1.0
    first.__exit__(None, None, None)
    port = int(url.rsplit(":", 1)[1])
    second = ServerThread(EchoBackend(), ServerConfig(port=port))
    second.__enter__()
    try:
        assert client.infer(observation(2.0))["actions"][0, 0] == 2.0
        assert client.reconnects == 1
    finally:
        client.close()
        second.__exit__(None, None, None)


def test_no_server_is_one_clear_error():
    with pytest.raises(ConnectError, match="no policy server at ws://127.0.0.1:9 after 2 attempts"):
        PolicyClient("ws://127.0.0.1:9", connect_retries=1, backoff_s=0.01)


def _malformed(rng: random.Random) -> bytes | str:
    """One of the ways a message can be wrong."""
    good = observation()
    kind = rng.randrange(12)
    if kind == 0:
        return bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 64)))
    if kind == 1:
        frame = pack(good)
        return frame[: rng.randrange(1, len(frame))]  # truncated
    if kind == 2:
        return "text " * rng.randrange(1, 10)
    if kind == 3:
        return pack(rng.choice([1, "x", [1, 2], None, 3.5, {"a": {"b": [1] * 5}}]))
    if kind == 4:
        key = rng.choice(list(good))
        return pack({k: v for k, v in good.items() if k != key})  # a key missing
    if kind == 5:
        key = rng.choice(list(good))
        return pack({**good, key: rng.choice([1, None, [1, 2], {"x": 1}, 2.5, b"raw"])})  # wrong type
    if kind == 6:
        dtype = rng.choice([np.float16, np.int8, np.uint16, np.float64, np.bool_, np.int64])
        return pack({**good, "observation.images.primary": np.zeros((16, 16, 3), dtype)})
    if kind == 7:
        shape = tuple(rng.randrange(0, 20) for _ in range(rng.randrange(0, 5)))
        shape = (9,) if shape == (8,) else shape  # (8,) is the valid one
        return pack({**good, "observation.state": np.zeros(shape, np.float32)})
    if kind == 8:
        return pack({**good, "observation.state": np.array([rng.choice([np.nan, np.inf, -np.inf])] * 8, np.float32)})
    if kind == 9:  # a huge declared shape with little data
        fake = {b"__ndarray__": True, b"data": b"\0" * 8, b"dtype": "|u1", b"shape": [1 << 30, 1 << 30, 3]}
        return msgpack.packb({**{k: v for k, v in good.items() if "images" not in k}, "observation.images.primary": fake,
                              "observation.images.wrist": fake}, default=lambda a: {b"__ndarray__": True, b"data": a.tobytes(),
                                                                                   b"dtype": a.dtype.str, b"shape": list(a.shape)})
    if kind == 10:  # a lying dtype string or array header
        fake = {b"__ndarray__": True, b"data": rng.choice([b"", b"\0" * 768, 5, None]),
                b"dtype": rng.choice(["|O", "<c8", "V8", "bogus", 7, "|u1"]), b"shape": rng.choice([[16, 16, 3], [-1], "x", [1.5]])}
        return msgpack.packb({"observation.images.primary": fake, "observation.images.wrist": fake, "task": "t",
                              "observation.state": {b"__npgeneric__": True, b"data": 1.0, b"dtype": "<f4"}})
    return pack({**good, "task": rng.choice(["", " ", "x" * 5000])})  # bad prompt


def _server_side_bytes() -> int:
    """Traced memory not allocated from this test module (the client's frames are the test's own)."""
    snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, __file__, all_frames=True)])
    return sum(stat.size for stat in snapshot.statistics("filename"))


def test_fuzz_ten_thousand_malformed_messages_then_a_valid_request(serve):
    from websockets.exceptions import ConnectionClosed

    url = serve(max_frame_bytes=1 << 16)
    rng = random.Random(0)
    tracemalloc.start(10)
    answered = closed = 0
    marks = []
    ws = sync_connect(url, legacy=True)
    ws.recv()
    for i in range(10_000):
        message = _malformed(rng) if i % 500 else b"\0" * (1 << 17)  # every 500th: over the frame cap
        try:
            ws.send(message)
            reply = unpack(ws.recv(timeout=10))
        except ConnectionClosed as e:  # only for frames over the cap: that connection ends, 1009
            assert e.rcvd.code == 1009 and len(message) > 1 << 16
            closed += 1
            ws = sync_connect(url, legacy=True)
            ws.recv()
            continue
        assert set(reply["error"]) == {"code", "field", "message"} and reply["error"]["message"]
        answered += 1
        if i in (3001, 5501, 7501, 9999):  # after warm-up: one-off buffers and lazy imports come first
            gc.collect()  # count what is kept, not garbage not yet collected
            marks.append(_server_side_bytes())
    ws.send(pack(observation(3.0)))
    assert unpack(ws.recv(timeout=10))["actions"][0, 0] == 3.0
    ws.close()
    tracemalloc.stop()
    assert answered + closed == 10_000 and closed >= 20
    # bounded, and flat at the end: nothing kept per message (a one-off ~2-8 MB step appears once,
    # between 5,500 and 7,500 messages; its cause was not tracked down)
    assert marks[-1] - marks[0] < 16 << 20 and marks[-1] - marks[-2] < 256 << 10, marks
