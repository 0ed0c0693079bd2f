"""Scale-out: simulator episodes on a Ray cluster (`--backend ray`), through the same episode loop
and the same resumable journals as the local process pool (`pokevla.sim.parallel`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Cluster:
    """Where jobs run: this machine's processes, or Ray (`address` None starts a local Ray;
    "auto" or HOST:PORT joins a running cluster). Not part of any result's identity."""

    backend: Literal["local", "ray"] = "local"
    address: str | None = None


LOCAL = Cluster()


def add_cluster_args(parser) -> None:
    """--backend and --ray-address, the same for every command that runs simulator episodes."""
    parser.add_argument("--backend", choices=["local", "ray"], default="local",
                        help="run episodes in local processes (default) or as Ray tasks (one CPU each)")
    parser.add_argument("--ray-address", default=None, metavar="auto|HOST:PORT",
                        help="with --backend ray: the cluster to join (default: start a local Ray)")


def cluster_from_args(args):
    """(Cluster, workers): with Ray and no --workers, as many tasks at once as the cluster has CPUs."""
    from pokevla.common.errors import PokeVLAError
    from pokevla.common.versions import usable_cores

    if args.ray_address and args.backend != "ray":
        raise PokeVLAError("--ray-address needs --backend ray")
    if args.workers is not None and args.workers < 1:
        raise PokeVLAError(f"--workers must be at least 1, got {args.workers}")
    if args.backend == "ray":
        from pokevla.scale.ray_backend import check_reachable

        check_reachable(args.ray_address)  # before any work starts, not at the first episode
        return Cluster("ray", args.ray_address), args.workers or 0
    return Cluster(), args.workers or usable_cores()
