"""`pokevla serve`: a WebSocket policy server (binary msgpack frames, see `protocol.py`).

One asyncio loop owns the connections; the model runs on one worker thread, so the loop keeps
answering keep-alive pings and reading other clients while a chunk is computed. Requests of
concurrent clients wait in one bounded queue and run together, up to `max_batch` per model call.
Each connection is lockstep (one request in flight), so memory is bounded by connections x frame cap.

    GET /healthz            -> 200 "OK" (no key needed)
    WebSocket /             -> metadata, then request -> response (errors leave the connection open)

With an API key, the WebSocket handshake needs `Authorization: Bearer KEY`; others get HTTP 401.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http import HTTPStatus

import numpy as np
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from pokevla.serve.backend import Backend
from pokevla.serve.protocol import (DEFAULT_MAX_FRAME_BYTES, PROTOCOL_VERSION, ProtocolError, decode_request, pack,
                                    request_id_of, unpack_frame)


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    max_batch: int = 1  # requests of concurrent clients run together in one model call, up to this many
    max_queue: int = 256  # queued requests beyond this are refused with code "overloaded"
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    api_key: str | None = None


@dataclass
class _Pending:
    observation: dict
    arrived: float  # perf_counter when the frame was read
    future: asyncio.Future


class PolicyServer:
    def __init__(self, backend: Backend, config: ServerConfig):
        self.backend, self.config = backend, config
        self.metadata = {"protocol": PROTOCOL_VERSION, "max_batch": config.max_batch, **backend.metadata()}
        self._metadata_frame = pack(self.metadata)
        # the backend sets up its thread there: OpenMP thread counts are per calling thread, so a
        # torch.set_num_threads made on the main thread does not reach the model thread
        self._model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pokevla-model",
                                                initializer=getattr(backend, "prepare_thread", None))
        self._queue: asyncio.Queue[_Pending] | None = None
        self.port: int | None = None  # the bound port (config.port 0 picks a free one)
        self._in_flight = 0  # requests queued or being computed

    async def run(self, stop: asyncio.Future, ready: asyncio.Future | None = None) -> None:
        """Serves until `stop` is done; then stops accepting, lets answers in flight go out, returns."""
        self._queue = asyncio.Queue(self.config.max_queue)
        batcher = asyncio.create_task(self._batches())
        async with serve(self._connection, self.config.host, self.config.port, process_request=self._http,
                         max_size=self.config.max_frame_bytes, compression=None) as server:
            self.port = server.sockets[0].getsockname()[1]
            if ready is not None and not ready.done():
                ready.set_result(self.port)
            await stop
            server.close(close_connections=False)  # no new connections; answers in flight still go out
            deadline = time.monotonic() + 10
            while self._in_flight and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            await asyncio.gather(*(c.close(1001, "server shutting down") for c in list(server.connections)),
                                 return_exceptions=True)
        batcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await batcher
        self._model_thread.shutdown(wait=True)

    def _http(self, connection: ServerConnection, request):
        if request.path == "/healthz":
            return connection.respond(HTTPStatus.OK, "OK\n")
        if self.config.api_key is not None:
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {self.config.api_key}".encode()):
                return connection.respond(HTTPStatus.UNAUTHORIZED, "missing or wrong API key (Authorization: Bearer KEY)\n")
        return None

    async def _connection(self, ws: ServerConnection) -> None:
        try:
            await ws.send(self._metadata_frame)
            async for frame in ws:
                await ws.send(await self._answer(frame))
        except ConnectionClosed:
            pass

    async def _answer(self, frame) -> bytes:
        arrived = time.perf_counter()
        message = None
        try:
            message = unpack_frame(frame, self.config.max_frame_bytes)
            observation, request_id = decode_request(message, self.backend.spec)
        except ProtocolError as e:
            return pack(e.to_message(request_id_of(message)))
        pending = _Pending(observation, arrived, asyncio.get_running_loop().create_future())
        try:
            self._queue.put_nowait(pending)
        except asyncio.QueueFull:
            return pack(ProtocolError(f"{self.config.max_queue} requests are queued; retry later", code="overloaded")
                        .to_message(request_id))
        self._in_flight += 1
        try:
            actions, timing = await pending.future
        except ProtocolError as e:
            return pack(e.to_message(request_id))
        finally:
            self._in_flight -= 1
        reply = {"actions": actions, "server_timing": {**timing, "total_ms": _ms(time.perf_counter() - arrived)}}
        if request_id is not None:
            reply["request_id"] = request_id
        return pack(reply)

    async def _batches(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self.config.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            batch = [p for p in batch if not p.future.done()]  # a client that left while queued
            if not batch:
                continue
            started = time.perf_counter()
            results = await loop.run_in_executor(self._model_thread, self._predict, [p.observation for p in batch])
            model_ms = _ms(time.perf_counter() - started)
            for pending, result in zip(batch, results):
                if pending.future.done():
                    continue
                if isinstance(result, ProtocolError):
                    pending.future.set_exception(result)
                else:
                    pending.future.set_result((result, {"infer_ms": model_ms, "queue_ms": _ms(started - pending.arrived),
                                                        "batch_size": len(batch)}))

    def _predict(self, observations: list[dict]) -> list:
        """Model thread: B observations -> B action chunks float32 (T, D), or per request the error.

        A batch that fails is retried one by one, so one bad request (say, a prompt too long for the
        context) does not fail the others."""
        try:
            return list(self.backend.predict(observations).astype(np.float32))
        except Exception as e:
            if len(observations) > 1:
                return [self._predict([o])[0] for o in observations]
            code = "bad_request" if isinstance(e, ValueError) else "inference_failed"  # InputError: the request's fault
            return [ProtocolError(f"inference failed: {e}", code=code)]


def _ms(seconds: float) -> float:
    return round(1000 * seconds, 3)


def run_server(backend: Backend, config: ServerConfig, announce=print) -> None:
    """Serves in this thread until SIGTERM or SIGINT, then shuts down cleanly."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop, ready = loop.create_future(), loop.create_future()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
        server = PolicyServer(backend, config)
        task = asyncio.create_task(server.run(stop, ready))
        await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()  # it failed to start (e.g. the port is taken): raise that
        port = ready.result()
        announce(f"serving {server.metadata['model']['preset']} ({backend.name}) on ws://{config.host}:{port} "
                 f"(health: http://{config.host}:{port}/healthz); Ctrl-C or SIGTERM stops")
        await task
        announce("server stopped")

    asyncio.run(main())


class ServerThread:
    """The server on a background thread of this process (notebooks, tests):

        with ServerThread(backend, ServerConfig(port=0)) as url:
            client = PolicyClient(url)
    """

    def __init__(self, backend: Backend, config: ServerConfig):
        import threading

        self.server = PolicyServer(backend, config)
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pokevla-serve", daemon=True)
        self._error: BaseException | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._stop = self._loop.create_future()
        ready = self._loop.create_future()
        ready.add_done_callback(lambda _: self._started.set())
        try:
            self._loop.run_until_complete(self.server.run(self._stop, ready))
        except BaseException as e:  # handed to the thread that started us
            self._error = e
            self._started.set()
        finally:
            self._loop.close()

    def __enter__(self) -> str:
        self._thread.start()
        self._started.wait(timeout=30)
        if self._error is not None:
            raise self._error
        return f"ws://{self.server.config.host}:{self.server.port}"

    def __exit__(self, *exc) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(lambda: self._stop.done() or self._stop.set_result(None))
            self._thread.join(timeout=30)
