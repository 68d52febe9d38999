"""Free loopback ports for servers that benchmarks and tests start."""

from __future__ import annotations

import socket
import threading

_handed_out: set[int] = set()
_lock = threading.Lock()


def free_port() -> int:
    """A loopback TCP port that was free a moment ago and that this process has not handed
    out before: the kernel may offer a just-released port again, and the members of one
    cluster need distinct ports."""
    with _lock:
        while True:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind(("127.0.0.1", 0))
                port: int = s.getsockname()[1]
            if port not in _handed_out:
                _handed_out.add(port)
                return port
