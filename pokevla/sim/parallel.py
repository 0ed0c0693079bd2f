"""Runs simulator episodes on every core, or on a Ray cluster.

Jobs go to a pool of spawned worker processes (spawn, not fork: a forked GL context is unsafe), or
with `Cluster("ray")` to Ray tasks (`pokevla.scale`). Each worker keeps its last two environments
and reuses them while consecutive jobs ask for the same configs, so sort jobs by task. Results come
back as they finish; the callers journal them, whichever backend ran them.
"""

from __future__ import annotations

import atexit
import gc
import multiprocessing as mp
import os
import sys
from typing import Callable, Iterable, Iterator, TypeVar

from pokevla.scale import LOCAL, Cluster
from pokevla.sim.env import EnvConfig, LiberoEnv

J = TypeVar("J")
R = TypeVar("R")

_cache: dict[EnvConfig, LiberoEnv] = {}
MAX_CACHED_ENVS = 2  # e.g. a physics-only env and a rendering env of the same task (~2 GB each)


def close_cached_envs() -> None:
    """Closes this process's environments and frees their GL contexts."""
    while _cache:
        _cache.pop(next(iter(_cache))).close()
    gc.collect()


def cached_env(config: EnvConfig) -> LiberoEnv:
    """This process's environment for `config`, kept for the next job; the oldest beyond two is closed."""
    if config in _cache:
        return _cache[config]
    while len(_cache) >= MAX_CACHED_ENVS:
        _cache.pop(next(iter(_cache))).close()
    _cache[config] = LiberoEnv(config)
    # (Re-)registered after robosuite's own exit handler, which terminates the EGL display and is
    # registered when the first rendering env is built, so ours runs first: contexts freed after
    # that raise a screenful of EGL errors at exit.
    atexit.unregister(close_cached_envs)
    atexit.register(close_cached_envs)
    return _cache[config]


def _init_worker() -> None:
    # llvmpipe would otherwise start one raster thread per core in every worker.
    os.environ.setdefault("LP_NUM_THREADS", "1")
    _stop_with_parent()


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _stop_with_parent() -> None:
    """Asks Linux to send this worker SIGTERM when its parent dies: a killed `pokevla eval` or
    `generate` leaves no worker finishing an episode nobody will journal (elsewhere a worker
    stops at its next job, when the pool's pipe is gone)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() == 1:  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def map_unordered(fn: Callable[[J], R], jobs: Iterable[J], workers: int, cluster: Cluster = LOCAL) -> Iterator[R]:
    """Yields fn(job) for every job, in completion order. Local: `workers` processes, this process
    when workers == 1. Ray: at most `workers` tasks at once (0: one per cluster CPU)."""
    if cluster.backend == "ray":
        from pokevla.scale.ray_backend import ray_map_unordered

        yield from ray_map_unordered(fn, jobs, workers, cluster.address)
        return
    jobs = list(jobs)
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            yield fn(job)
        return
    ctx = mp.get_context("spawn")
    with ctx.Pool(processes=min(workers, len(jobs)), initializer=_init_worker, maxtasksperchild=None) as pool:
        yield from pool.imap_unordered(fn, jobs, chunksize=1)
