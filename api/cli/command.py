"""One kvctl command: its words, usage text, local flags and the coroutine that runs it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from api.cli.context import Ctx
from api.cli.errors import EXIT_BAD_ARGS, CliError
from api.cli.flags import BOOL, Flag, Parsed

__all__ = ["Command", "bad_args", "parse_hex_id"]

Run = Callable[[Ctx, Parsed], Awaitable[int | None]]


@dataclass(frozen=True, slots=True)
class Command:
    path: tuple[str, ...]
    short: str
    use: str
    run: Run
    flags: tuple[Flag, ...] = ()
    description: str = ""

    @property
    def local_flags(self) -> tuple[Flag, ...]:
        return (*self.flags, Flag("help", BOOL, False, f"help for {self.path[-1]}", "h"))


def bad_args(message: str) -> CliError:
    return CliError(EXIT_BAD_ARGS, message)


def parse_hex_id(text: str, *, what: str, unsigned: bool = False) -> int:
    """A lease or member ID in hex, with Go's strconv error text on failure."""
    fn = "ParseUint" if unsigned else "ParseInt"
    try:
        value = int(text, 16)
        if text.strip() != text or text.startswith(("+", "0x", "0X")) or "_" in text:
            raise ValueError
    except ValueError:
        raise bad_args(f'bad {what} ID arg (strconv.{fn}: parsing "{text}": invalid syntax), '
                       "expecting ID in Hex") from None
    limit = 2**64 if unsigned else 2**63
    if value >= limit:
        raise bad_args(f'bad {what} ID arg (strconv.{fn}: parsing "{text}": value out of range), '
                       "expecting ID in Hex")
    return value
