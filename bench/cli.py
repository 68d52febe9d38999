"""`kvbench`: one entry point, one sub-command per benchmark.

Sub-commands register themselves in COMMANDS as (module, description); each module
exposes `add_arguments(parser)` and `run(args) -> int`. Modules are imported lazily so
that `kvbench sim` does not pay for importing LMDB or gRPC.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "storage": ("bench.storage", "WAL and MVCC micro-benchmarks"),
    "raft": ("bench.raft_bench", "in-process 3-node Raft throughput"),
    "sim": ("bench.sim", "deterministic Raft simulation over many seeds"),
    "load": ("bench.load.cli", "gRPC load against kvstore and real etcd, side by side"),
    "jepsen": ("bench.jepsen.cli", "fault injection with linearizability and watch checkers"),
    "floor": ("bench.grpc_floor", "the Python gRPC round trip with no work behind it"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kvbench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text)
        sub_parser.set_defaults(module_name=module_name)
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not (module_name + ".").startswith(exc.name + "."):
                raise  # a missing dependency, not a missing sub-command
            sub_parser.set_defaults(missing=True)
            continue
        module.add_arguments(sub_parser)
    args = parser.parse_args(argv)
    if getattr(args, "missing", False):
        print(f"kvbench {args.command}: not implemented yet", file=sys.stderr)
        return 2
    module = importlib.import_module(args.module_name)
    return int(module.run(args))


if __name__ == "__main__":
    sys.exit(main())
