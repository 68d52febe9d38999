"""`kvstore`: the server entry point (filled in by the server issue)."""

import sys


def main(argv: list[str] | None = None) -> int:
    print(
        "kvstore: the server is not implemented yet (see issue 4: api/ server)",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main())
