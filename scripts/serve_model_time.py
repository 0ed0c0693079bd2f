"""Does the way the server calls the model cost time? One backend, one observation, timed in the
settings `pokevla serve` uses, in one process so that machine drift hits all alike.

    python scripts/serve_model_time.py CHECKPOINT [torch|onnx] [REQUESTS]

Prints the p50 in ms of `backend.predict` on the main thread, on a worker thread (the server's
model thread), awaited from an event loop through that thread, on a request freshly decoded from
its msgpack frame, and of the decoding alone; then the main thread again.
"""
import argparse
import asyncio
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from pokevla.serve.backend import sample_observations, training_tasks
from pokevla.serve.commands import make_backend
from pokevla.serve.protocol import decode_request, pack, unpack_frame

checkpoint = sys.argv[1]
backend_name = sys.argv[2] if len(sys.argv) > 2 else "torch"
requests, warmup = (int(sys.argv[3]) if len(sys.argv) > 3 else 200), 20
backend = make_backend(argparse.Namespace(checkpoint=checkpoint, backend=backend_name, device="cpu", threads=1,
                                          image_size=None))
observation = sample_observations(backend.spec, None, 1, tasks=training_tasks(backend.source))[0]
frame = pack(observation)


def p50_ms(call) -> float:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(requests):
        t0 = time.perf_counter()
        call()
        times.append(1000 * (time.perf_counter() - t0))
    return round(float(np.median(times)), 3)


def decoded() -> dict:
    return decode_request(unpack_frame(frame), backend.spec)[0]


model_thread = ThreadPoolExecutor(1, initializer=getattr(backend, "prepare_thread", None))
loop = asyncio.new_event_loop()
print(json.dumps({
    "main_thread": p50_ms(lambda: backend.predict([observation])),
    "worker_thread": p50_ms(lambda: model_thread.submit(backend.predict, [observation]).result()),
    "event_loop_through_worker": p50_ms(
        lambda: loop.run_until_complete(loop.run_in_executor(model_thread, backend.predict, [observation]))),
    "freshly_decoded_request": p50_ms(lambda: backend.predict([decoded()])),
    "decoding_alone": p50_ms(decoded),
    "main_thread_again": p50_ms(lambda: backend.predict([observation])),
}))
