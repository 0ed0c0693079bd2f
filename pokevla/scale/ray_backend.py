"""Work units (one episode, one variant, one demonstration attempt) as Ray tasks.

Each task asks for one CPU and builds its simulator inside the Ray worker (a GL context does not
survive pickling); workers are long-lived processes, so `cached_env` reuses environments across
tasks as the local pool does. Results come back in completion order and the caller journals each
one, so a killed driver resumes from its journal and a worker lost mid-episode is retried by Ray
(`max_retries`) without the episode being counted twice: only finished results are written.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from pokevla.common.errors import PokeVLAError

J = TypeVar("J")
R = TypeVar("R")
RETRIES = 3  # per task, for lost workers and nodes (not for exceptions the episode raises)
_NO_JOB = object()
FORWARDED_ENV = ("MUJOCO_GL", "PYOPENGL_PLATFORM", "MUJOCO_EGL_DEVICE_ID")


def _ray():
    try:
        import ray
    except ImportError:
        raise PokeVLAError("--backend ray needs Ray: pip install -e '.[ray]' (on every node of the cluster)") from None
    return ray


def connect(address: str | None, local_cpus: int | None = None):
    """Joins the cluster at `address` ("auto", "HOST:PORT", "ray://HOST:PORT"), or starts a local Ray
    with `local_cpus` CPUs when `address` is None. Returns the `ray` module."""
    ray = _ray()
    if ray.is_initialized():
        return ray
    env = {"LP_NUM_THREADS": "1", **{k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}}
    check_reachable(address)
    try:
        ray.init(address=address, num_cpus=local_cpus if address is None else None, include_dashboard=False,
                 runtime_env={"env_vars": env}, log_to_driver=False, configure_logging=False)
    except Exception as e:  # ConnectionError, RuntimeError, ValueError: all mean "no cluster there"
        where = f"at {address}" if address else "locally"
        raise PokeVLAError(f"cannot start or reach a Ray cluster {where} ({type(e).__name__}: {str(e).splitlines()[0][:150]}); "
                           f"start one with `ray start --head` and pass --ray-address auto, or drop --ray-address") from None
    return ray


def check_reachable(address: str | None, timeout_s: float = 5.0) -> None:
    """A HOST:PORT that accepts no TCP connection is refused at once: `ray.init` would keep retrying it."""
    import socket

    if address in (None, "auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            return
    except (OSError, ValueError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e) or type(e).__name__
    raise PokeVLAError(f"cannot start or reach a Ray cluster at {address} ({reason}); start one with `ray start --head` "
                       f"and pass --ray-address auto or HOST:PORT of its head node")


def _call(fn, job):
    return fn(job)


def ray_map_unordered(fn: Callable[[J], R], jobs: Iterable[J], max_in_flight: int, address: str | None) -> Iterator[R]:
    """Yields fn(job) for every job in completion order, at most `max_in_flight` tasks at once
    (0: one per CPU of the cluster). An exception an episode raises is raised here as itself."""
    jobs = list(jobs)
    if not jobs:
        return
    ray = connect(address, local_cpus=max_in_flight or None)
    limit = max_in_flight or max(1, int(ray.cluster_resources().get("CPU", 1)))
    task = ray.remote(num_cpus=1, max_retries=RETRIES, retry_exceptions=False)(_call)
    fn_ref = ray.put(fn)
    pending = iter(jobs)
    in_flight = {}
    for job in pending:
        in_flight[task.remote(fn_ref, job)] = job
        if len(in_flight) >= limit:
            break
    try:
        while in_flight:
            (done,), _ = ray.wait(list(in_flight), num_returns=1)
            in_flight.pop(done)
            try:
                result = ray.get(done)
            except ray.exceptions.RayTaskError as e:  # the episode's own exception, re-raised as its own type
                raise e.as_instanceof_cause() from None
            except ray.exceptions.RayError as e:  # lost after all retries, or a worker that cannot start
                raise PokeVLAError(f"a Ray task failed after {RETRIES} retries ({type(e).__name__}: "
                                   f"{str(e).splitlines()[0][:200]}); check that every node has pokevla installed and "
                                   f"can render (finished episodes are kept: rerun to resume)") from None
            yield result
            following = next(pending, _NO_JOB)
            if following is not _NO_JOB:
                in_flight[task.remote(fn_ref, following)] = following
    finally:  # a consumer that stops early (generation has its episodes) leaves no work running
        for ref in in_flight:
            ray.cancel(ref, force=True)
