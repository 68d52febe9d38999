"""Regenerate the Python stubs of our etcd-compatible .proto files.

Run from the repository root: `python -m api.proto.generate`.

Layout. The .proto files live in api/proto/ and import each other by their path from the
repository root ("api/proto/kv.proto"), and protoc runs with the repository root as its only
import root. protoc derives the Python module of an import from its proto path, so the
generated `rpc_pb2.py` says `from api.proto import kv_pb2`: that resolves to this package
whether the repository is installed editable or run from its root. The protobuf *package*
names (etcdserverpb, mvccpb, ...) are independent of the file path, and they are what the
wire sees: full method names like "/etcdserverpb.KV/Range" and message type names.

For each .proto we write `<name>_pb2.py` (messages), `<name>_pb2.pyi` (types for mypy) and
`<name>_pb2_grpc.py` (service stubs and servicer bases). The outputs are committed;
tests/unit/api/test_proto_current.py regenerates them into a temp dir and fails when they
differ, so an edit to a .proto without regeneration cannot slip through.
"""

from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[2]
PROTO_DIR = Path("api") / "proto"
# Dependencies first, for readability only (protoc resolves the order itself).
PROTO_NAMES = ("kv", "auth", "rpc", "v3lock", "v3election")
SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")
LINT_EXEMPTION = '# ruff: noqa\n# mypy: disable-error-code="type-arg"\n'


def proto_files() -> list[Path]:
    """The .proto sources, as paths relative to the repository root."""
    return [PROTO_DIR / f"{name}.proto" for name in PROTO_NAMES]


def generated_files() -> list[Path]:
    """Every generated file, as paths relative to the output root."""
    return [PROTO_DIR / f"{name}{suffix}" for name in PROTO_NAMES for suffix in SUFFIXES]


def generate(out_root: Path) -> list[Path]:
    """Run protoc on every .proto, writing under out_root/api/proto/; return the files."""
    (out_root / PROTO_DIR).mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"--proto_path={ROOT}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        *(str(ROOT / p) for p in proto_files()),
    ]
    rc = protoc.main(args)
    if rc != 0:
        raise RuntimeError(f"protoc failed with exit code {rc}")
    outputs = [out_root / p for p in generated_files()]
    missing = [str(p) for p in outputs if not p.exists()]
    if missing:
        raise RuntimeError(f"protoc did not write {missing}")
    for path in outputs:
        if path.suffix == ".pyi":
            _exempt_from_lint(path)
    return outputs


def _exempt_from_lint(path: Path) -> None:
    # The project's ruff config excludes the generated *.py stubs but not the *.pyi ones,
    # whose generated style (typing.Optional, unsorted imports, bare Mapping) we do not
    # control; the header keeps `ruff check .` and `mypy --strict` on our code quiet.
    text = path.read_text()
    if not text.startswith(LINT_EXEMPTION):
        path.write_text(LINT_EXEMPTION + text)


def main() -> int:
    for path in generate(ROOT):
        print(path.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
