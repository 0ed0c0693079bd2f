"""The `pokevla` command: a thin dispatcher over the sub-packages' own commands.

Each concern registers its sub-commands in its `commands.py` (`register(subparsers)`), importing
heavy libraries (torch, the simulator) only inside the handlers so `pokevla --help` stays instant.
A `PokeVLAError` is printed as one line and exits with status 2, and removes the output folders the
command created while they are still empty.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from pokevla import __version__
from pokevla.common.errors import PokeVLAError
from pokevla.common.io import removed_if_failed

COMMAND_MODULES = (
    "pokevla.sim.commands",
    "pokevla.robustness.commands",
    "pokevla.expert.commands",
    "pokevla.data.commands",
    "pokevla.model.commands",
    "pokevla.pretrain.commands",
    "pokevla.train.commands",
    "pokevla.eval.commands",
    "pokevla.serve.commands",
    "pokevla.quickstart",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pokevla",
        description="PokeVLA: simulate LIBERO, generate demonstrations, train, evaluate and stress-test a pocket-sized VLA.",
    )
    parser.add_argument("--version", action="version", version=f"pokevla {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with removed_if_failed():
            result = args.func(args)
    except PokeVLAError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
