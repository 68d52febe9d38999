"""Errors raised by the Raft core.

```
RaftError
 |-- ProposalDroppedError        caller misuse / transient: no leader, leadership transfer in
 |                               progress, uncommitted-size limit, node not in the config
 |-- StepLocalMsgError           RawNode.step was given a local-only message (MsgHup, MsgBeat...)
 |-- StepPeerNotFoundError       a response from a node that has no progress (unknown peer)
 |-- ConfChangeError             an invalid membership change (remove all voters, node id 0)
 |-- ReadyNotAdvancedError       ready() called again before advance() of the previous Ready
 `-- StorageError                the LogStorage cannot serve a request
      |-- CompactedError                     the index is before the first available entry
      |-- SnapOutOfDateError                 snapshot older than the one already held
      |-- UnavailableError                   the index is after the last available entry
      `-- SnapshotTemporarilyUnavailableError  snapshot being prepared; retry later
```
Caller misuse (ProposalDropped, StepLocalMsg, ConfChange) is kept apart from storage faults.
Programmer errors (a broken invariant of the core itself) raise `InvariantError` from
`invariant()`, which is always on (unlike `assert`).
"""

from __future__ import annotations


class RaftError(Exception):
    """Base of every error raised by the raft package."""


class ProposalDroppedError(RaftError):
    pass


class StepLocalMsgError(RaftError):
    pass


class StepPeerNotFoundError(RaftError):
    pass


class ConfChangeError(RaftError):
    pass


class ReadyNotAdvancedError(RaftError):
    pass


class StorageError(RaftError):
    pass


class CompactedError(StorageError):
    pass


class SnapOutOfDateError(StorageError):
    pass


class UnavailableError(StorageError):
    pass


class SnapshotTemporarilyUnavailableError(StorageError):
    pass


class InvariantError(RuntimeError):
    """A broken internal invariant: a bug in the core or its caller, never a peer fault."""


def invariant(cond: bool, msg: str, *args: object) -> None:
    """Always-on check for programmer errors (Python's `assert` vanishes under -O).

    With `args`, the message is `msg % args`, formatted only on failure: hot paths pass
    their numbers as arguments rather than paying for an f-string on every call."""
    if not cond:
        raise InvariantError(msg % args if args else msg)
