"""The robot-side client of `pokevla serve`: numpy, msgpack and websockets only (no torch, no simulator).

    from pokevla.serve.client import PolicyClient
    from pokevla.serve.broker import ActionChunkBroker

    with PolicyClient("ws://robot-server:8000", timeout=2.0) as client:
        broker = ActionChunkBroker(client.predict_chunk, client.metadata["execute_steps"])
        action = broker.act({"observation.images.primary": image, "observation.images.wrist": wrist,
                             "observation.state": state, "task": "put the bowl on the plate"})

Connecting retries with exponential back-off; a connection that drops in the middle of an episode
is re-opened and the request sent again (inference has no side effects), once per call. Every
request carries an id, so a late answer to a call that timed out is never taken for the next one.
"""

from __future__ import annotations

import inspect
import itertools
import os
import time
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from pokevla.serve.protocol import DEFAULT_MAX_FRAME_BYTES, PROTOCOL_VERSION, pack, unpack

# websockets >= 17.1 wants `connect` as a context manager unless told this client closes its own
# connections; older releases have no such flag
_CONNECT_FLAGS = {"legacy": True} if "legacy" in inspect.signature(connect).parameters else {}


def read_api_key(path: str) -> str:
    """The key in the file `path` (surrounding whitespace dropped); one-line errors for a missing or
    empty file. Shared by the server, the evaluator and robot code."""
    from pokevla.common.errors import PokeVLAError

    try:
        key = open(path, encoding="utf-8").read().strip()
    except OSError as e:
        raise PokeVLAError(f"cannot read the API key file {path}: {e.strerror}") from None
    if not key:
        raise PokeVLAError(f"the API key file {path} is empty")
    return key


class ServerError(RuntimeError):
    """The server refused a request; `code` and `field` say why (see the protocol module)."""

    def __init__(self, error: dict):
        self.code, self.field = error.get("code"), error.get("field")
        super().__init__(f"{self.code}: {error.get('message')}" + (f" (field {self.field})" if self.field else ""))


class ConnectError(ConnectionError):
    """No server answered at the address within the retries."""


class PolicyClient:
    def __init__(self, url: str = "ws://127.0.0.1:8000", *, api_key: str | None = None, timeout: float = 30.0,
                 connect_retries: int = 5, backoff_s: float = 0.25, max_backoff_s: float = 4.0,
                 max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES):
        self.url, self.timeout = url, timeout
        self.connect_retries, self.backoff_s, self.max_backoff_s = connect_retries, backoff_s, max_backoff_s
        self.max_frame_bytes = max_frame_bytes
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._ids = itertools.count()
        self._prefix = f"{os.getpid()}-{id(self) & 0xFFFF:x}"
        self._ws: ClientConnection | None = None
        self.metadata: dict = {}
        self.reconnects = 0
        self.connect()

    def connect(self) -> None:
        """Opens the connection and reads the server's metadata, retrying with back-off."""
        self.close()
        delay, last = self.backoff_s, None
        for attempt in range(self.connect_retries + 1):
            try:
                ws = connect(self.url, additional_headers=self._headers, max_size=self.max_frame_bytes,
                             open_timeout=self.timeout, compression=None, **_CONNECT_FLAGS)
                metadata = unpack(ws.recv(timeout=self.timeout))
                break
            except InvalidStatus as e:  # the server answered: retrying will not help (e.g. 401)
                raise ConnectError(f"{self.url} refused the connection: HTTP {e.response.status_code}") from None
            except (OSError, TimeoutError, InvalidHandshake, ConnectionClosed) as e:
                last = e
                if attempt < self.connect_retries:
                    time.sleep(delay)
                    delay = min(2 * delay, self.max_backoff_s)
        else:
            raise ConnectError(f"no policy server at {self.url} after {self.connect_retries + 1} attempts ({last})")
        if not isinstance(metadata, dict) or metadata.get("protocol") != PROTOCOL_VERSION:
            ws.close()
            raise ConnectError(f"{self.url} speaks {metadata.get('protocol') if isinstance(metadata, dict) else '?'}, "
                               f"not {PROTOCOL_VERSION}")
        self._ws, self.metadata = ws, metadata

    def infer(self, observation: dict[str, Any]) -> dict:
        """One observation -> the server's reply {"actions" (T, D) float32, "server_timing", "request_id"}.

        Raises ServerError for a refused request, TimeoutError when no answer came within `timeout`."""
        request_id = f"{self._prefix}-{next(self._ids)}"
        frame = pack({**observation, "request_id": request_id})
        for attempt in range(2):
            try:
                if self._ws is None:
                    self.connect()
                self._ws.send(frame)
                reply = self._await(request_id)
                break
            except ConnectionClosed:
                if attempt:
                    raise
                self._ws = None
                self.reconnects += 1
        if "error" in reply:
            raise ServerError(reply["error"])
        return reply

    def _await(self, request_id: str) -> dict:
        deadline = time.monotonic() + self.timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no answer from {self.url} within {self.timeout} s")
            reply = unpack(self._ws.recv(timeout=left))
            if isinstance(reply, dict) and reply.get("request_id") in (request_id, None):
                return reply  # None: an error about a frame the server could not read at all
            # else: the late answer to an earlier call that timed out

    def predict_chunk(self, observation: dict[str, Any]):
        """observation -> actions float32 (T, D): the `ActionChunkBroker`'s predictor."""
        return self.infer(observation)["actions"]

    def close(self) -> None:
        if self._ws is not None:
            self._ws.close()
            self._ws = None

    def __enter__(self) -> "PolicyClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
