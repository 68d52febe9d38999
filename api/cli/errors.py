"""etcdctl's exit codes and the error that carries one up to `main`.

A command raises `CliError(code, message)`; `main` prints `Error: <message>` on stderr and
exits with the code. Server errors (api.client.EtcdError) become exit 1 with the server's
text, as etcdctl's ExitWithError(ExitError, err) does.
"""

from __future__ import annotations

__all__ = [
    "EXIT_BAD_ARGS",
    "EXIT_BAD_CONNECTION",
    "EXIT_BAD_FEATURE",
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_INVALID_INPUT",
    "EXIT_SUCCESS",
    "CliError",
]

EXIT_SUCCESS = 0
EXIT_ERROR = 1
EXIT_BAD_CONNECTION = 2
EXIT_INVALID_INPUT = 3
EXIT_BAD_FEATURE = 4
EXIT_INTERRUPTED = 5
EXIT_BAD_ARGS = 128


class CliError(Exception):
    def __init__(self, exit_code: int, message: str) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.message = message
