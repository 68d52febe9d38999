"""`kvctl`: the etcdctl-style CLI (filled in by the client issue)."""

import sys


def main(argv: list[str] | None = None) -> int:
    print("kvctl: not implemented yet (see issue 6: client library and kvctl)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
