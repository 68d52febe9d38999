"""Named crash points (after etcd's gofail): a no-op unless the process arms a hook.

The library calls `failpoint("wal.before_fsync")` at each point where a crash, a delay or
an injected I/O error is worth testing. Production never sets a hook, so each call costs
one global lookup. The server (or a test) arms points with `set_hook`; the hook may raise
(e.g. OSError(EIO)), sleep, or kill the process.
"""

from __future__ import annotations

from collections.abc import Callable

_hook: Callable[[str], None] | None = None


def set_hook(hook: Callable[[str], None] | None) -> None:
    """Install (or with None, remove) the function called at every failpoint."""
    global _hook
    _hook = hook


def failpoint(name: str) -> None:
    if _hook is not None:
        _hook(name)
