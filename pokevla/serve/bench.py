"""`pokevla serve bench`: where a served action chunk's time goes.

For each backend: the model called in-process (the floor), then a `pokevla serve` subprocess on
loopback with 1 and N concurrent clients (threads of this process, each with its own connection).
Per request: the client's round trip, and from the server's timing its queueing and model time;
the overhead of serving is the round trip's p50 minus the in-process p50. Payload sizes are the
packed request and response.
"""

from __future__ import annotations

import math
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass

import numpy as np

from pokevla.common.errors import PokeVLAError
from pokevla.common.io import write_json_atomic
from pokevla.common.versions import machine, package_versions
from pokevla.serve.backend import sample_observations, training_tasks
from pokevla.serve.protocol import pack


@dataclass(frozen=True)
class BenchConfig:
    checkpoint: str | None  # the torch backend's checkpoint (None: only --onnx)
    onnx: str | None = None  # an export folder: bench the ONNX backend too
    device: str = "cpu"
    threads: int = 1
    image_size: int | None = None
    requests: int = 200
    warmup: int = 20
    clients: tuple[int, ...] = (1, 4)


def percentiles(values_ms: list[float]) -> dict:
    v = sorted(values_ms)
    at = lambda q: v[min(len(v) - 1, math.ceil(q * len(v)) - 1)]  # noqa: E731
    return {"p50": round(at(0.5), 3), "p90": round(at(0.9), 3), "p99": round(at(0.99), 3), "n": len(v)}


def _in_process(backend, observation: dict, requests: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        backend.predict([observation])
    times = []
    for _ in range(requests):
        t0 = time.perf_counter()
        backend.predict([observation])
        times.append(1000 * (time.perf_counter() - t0))
    return times


def _alternating(cfg: BenchConfig) -> dict:
    """Both backends in this process, called in turn on the same observation: machine-speed drift
    (large on small shared machines) hits both alike, so their ratio is the figure to trust."""
    import argparse

    from pokevla.serve.commands import make_backend

    backends = {name: make_backend(argparse.Namespace(checkpoint=ckpt, backend=name, device=cfg.device, threads=cfg.threads,
                                                      image_size=cfg.image_size))
                for name, ckpt in (("torch", cfg.checkpoint), ("onnx", cfg.onnx))}
    observation = sample_observations(backends["torch"].spec, None, 1, tasks=training_tasks(backends["onnx"].source))[0]
    times: dict[str, list[float]] = {name: [] for name in backends}
    for i in range(cfg.warmup + cfg.requests):
        for name, backend in backends.items():
            t0 = time.perf_counter()
            backend.predict([observation])
            if i >= cfg.warmup:
                times[name].append(1000 * (time.perf_counter() - t0))
    out = {name: percentiles(t) for name, t in times.items()}
    out["onnx_speedup_p50"] = round(out["torch"]["p50"] / out["onnx"]["p50"], 2)
    return out


def _start_server(args: list[str]) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "pokevla.cli", "serve", "--port", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        found = re.search(r"on (ws://\S+:\d+)", line)
        if found:
            threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep its pipe drained
            return proc, found.group(1)
    proc.wait()
    raise PokeVLAError(f"the server did not start: {''.join(lines[-3:]).strip()}")


def _client_run(url: str, observation: dict, requests: int, warmup: int, rows: list, errors: list) -> None:
    from pokevla.serve.client import PolicyClient

    try:
        with PolicyClient(url, timeout=60) as client:
            for i in range(warmup + requests):
                t0 = time.perf_counter()
                reply = client.infer(observation)
                rt = 1000 * (time.perf_counter() - t0)
                if i >= warmup:
                    timing = reply["server_timing"]
                    rows.append((rt, timing["queue_ms"], timing["infer_ms"], timing["total_ms"], timing["batch_size"]))
    except Exception as e:  # reported in the results, never swallowed
        errors.append(f"{type(e).__name__}: {e}")


def _served(url: str, observation: dict, clients: int, requests: int, warmup: int) -> dict:
    rows: list = []
    errors: list = []
    threads = [threading.Thread(target=_client_run, args=(url, observation, requests, warmup, rows, errors))
               for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise PokeVLAError(f"bench clients failed: {errors[0]}")
    rt, queue, model, total, batch = (list(col) for col in zip(*rows))
    return {"clients": clients, "round_trip_ms": percentiles(rt), "queue_ms": percentiles(queue),
            "round_trip_minus_model_ms": percentiles([r - m for r, m in zip(rt, model)]),
            "model_ms": percentiles(model), "server_total_ms": percentiles(total),
            "mean_batch": round(float(np.mean(batch)), 2),
            "throughput_chunks_per_s": round(len(rows) / wall, 1)}  # warm-up included in the wall: a floor


def _backend_runs(cfg: BenchConfig) -> list[tuple[str, str, list[str]]]:
    """(backend, checkpoint, the server's extra flags) per backend to bench."""
    runs = []
    if cfg.checkpoint:
        runs.append(("torch", cfg.checkpoint, ["--device", cfg.device]
                     + (["--image-size", str(cfg.image_size)] if cfg.image_size else [])))
    if cfg.onnx:
        runs.append(("onnx", cfg.onnx, []))
    if not runs:
        raise PokeVLAError("give --checkpoint (torch) and / or --onnx DIR to bench")
    return runs


def run_bench(cfg: BenchConfig, json_path: str | None = None) -> dict:
    import argparse

    from pokevla.serve.commands import make_backend

    results: dict = {"settings": asdict(cfg), "machine": machine(),
                     "versions": package_versions(("pokevla", "torch", "onnxruntime", "websockets", "msgpack", "numpy")),
                     "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "backends": {}}
    for name, checkpoint, extra in _backend_runs(cfg):
        backend = make_backend(argparse.Namespace(checkpoint=checkpoint, backend=name, device=cfg.device,
                                                  threads=cfg.threads, image_size=cfg.image_size))
        observation = sample_observations(backend.spec, None, 1, tasks=training_tasks(backend.source))[0]
        before = _in_process(backend, observation, cfg.requests, cfg.warmup)
        response = pack({"actions": backend.predict([observation])[0], "server_timing": {
            "infer_ms": 0.0, "queue_ms": 0.0, "batch_size": 1, "total_ms": 0.0}, "request_id": "0-0-0"})
        proc, url = _start_server(["--checkpoint", checkpoint, "--backend", name, "--threads", str(cfg.threads),
                                   "--max-batch", str(max(cfg.clients)), *extra])
        try:
            served = [_served(url, observation, c, cfg.requests, cfg.warmup) for c in cfg.clients]
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        # measured again once the server is gone: on a small machine the two runs differ by more than
        # the overhead looked for, so the floor is the faster of the two
        after = _in_process(backend, observation, cfg.requests, cfg.warmup)
        del backend
        in_process = min((percentiles(before), percentiles(after)), key=lambda p: p["p50"])
        one = next((s for s in served if s["clients"] == 1), None)
        results["backends"][name] = {
            "in_process_ms": in_process,
            "in_process_runs_p50_ms": [percentiles(before)["p50"], percentiles(after)["p50"]],
            "served": served,
            "overhead_p50_ms": round(one["round_trip_ms"]["p50"] - in_process["p50"], 3) if one else None,
            "transport_p50_ms": one["round_trip_minus_model_ms"]["p50"] if one else None,
            "payload_bytes": {"request": len(pack({**observation, "request_id": "0-0-0"})), "response": len(response)},
        }
    if cfg.checkpoint and cfg.onnx:
        results["in_process_alternating"] = _alternating(cfg)
    if json_path:
        write_json_atomic(json_path, results)
    return results


def format_table(results: dict) -> str:
    lines = [f"{'backend':<8}{'clients':>8}{'round trip p50/p90/p99 ms':>30}{'queue p50':>11}{'model p50':>11}"
             f"{'chunks/s':>10}{'mean batch':>12}"]
    for name, b in results["backends"].items():
        ip = b["in_process_ms"]
        lines.append(f"{name:<8}{'in-proc':>8}{ip['p50']:>12.2f} / {ip['p90']:.2f} / {ip['p99']:.2f}")
        for s in b["served"]:
            rt = s["round_trip_ms"]
            lines.append(f"{name:<8}{s['clients']:>8}{rt['p50']:>12.2f} / {rt['p90']:.2f} / {rt['p99']:.2f}"
                         f"{s['queue_ms']['p50']:>11.2f}{s['model_ms']['p50']:>11.2f}"
                         f"{s['throughput_chunks_per_s']:>10.1f}{s['mean_batch']:>12.2f}")
        lines.append(f"{name:<8}round trip p50 minus in-process p50: {b['overhead_p50_ms']} ms (in-process runs "
                     f"{b['in_process_runs_p50_ms']}); per request, round trip minus the server's model time: "
                     f"{b['transport_p50_ms']} ms")
        lines.append(f"{name:<8}payload "
                     f"{b['payload_bytes']['request']} B in, {b['payload_bytes']['response']} B out")
    if "in_process_alternating" in results:
        a = results["in_process_alternating"]
        lines.append(f"in-process, calls alternating: torch p50 {a['torch']['p50']:.2f} ms, onnx p50 {a['onnx']['p50']:.2f} ms "
                     f"-> onnx {a['onnx_speedup_p50']}x faster")
    return "\n".join(lines)

