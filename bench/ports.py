"""Free loopback ports for servers that benchmarks and tests start.

Ports come from below the kernel's ephemeral range, so that no outgoing connection (of any
process) can take a port between the moment it is handed out and the moment a server binds
it; and each process draws from its own slice of that range (pytest-xdist workers by worker
number, others by pid), so that two test workers never hand out the same port.
"""

from __future__ import annotations

import os
import socket
import threading

LOWEST_PORT = 10000
SLICES = 16
_EPHEMERAL_RANGE = "/proc/sys/net/ipv4/ip_local_port_range"

_handed_out: set[int] = set()
_lock = threading.Lock()
_cursor: int | None = None


def ephemeral_low(path: str = _EPHEMERAL_RANGE) -> int:
    """The lowest port the kernel picks for outgoing connections (Linux default 32768)."""
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def slice_of_process(environ: dict[str, str] | None = None, pid: int | None = None) -> int:
    """This process's slice: the xdist worker number ("gw3" -> 3), else one from the pid."""
    env = os.environ if environ is None else environ
    worker = env.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw") and worker[2:].isdigit():
        return int(worker[2:]) % SLICES
    return (os.getpid() if pid is None else pid) % SLICES


def slice_bounds(index: int, high: int) -> tuple[int, int]:
    """[start, end) of slice `index` in [LOWEST_PORT, high)."""
    width = (high - LOWEST_PORT) // SLICES
    if width < 16:
        raise RuntimeError(f"no room for test ports below the ephemeral range ({high})")
    start = LOWEST_PORT + index * width
    return start, start + width


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A loopback TCP port that was free a moment ago and that this process has not handed
    out before (the members of one cluster need distinct ports)."""
    global _cursor
    with _lock:
        start, end = slice_bounds(slice_of_process(), ephemeral_low())
        if _cursor is None:
            # A pid-dependent start keeps successive runs from reusing TIME_WAIT ports.
            _cursor = start + (os.getpid() * 7919) % (end - start)
        for _ in range(end - start):
            port = _cursor
            _cursor = start + (_cursor + 1 - start) % (end - start)
            if port not in _handed_out and _bindable(port):
                _handed_out.add(port)
                return port
        raise RuntimeError(f"no free loopback port in {start}..{end - 1}")
