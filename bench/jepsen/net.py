"""Where members listen and how their links are cut or slowed: three backends.

* `NetnsNet`: each member runs in its own Linux network namespace (`ip netns exec`),
  joined by veth pairs to a bridge in the root namespace, where our clients run. A
  partition adds blackhole routes inside the namespaces of both ends of every cut link
  (`ip route add blackhole <peer>/32`), so the kernel drops their traffic; healing deletes
  them. Delay uses `tc qdisc ... netem` on each member's interface when the kernel has
  netem (checked at set-up); without it this backend cannot delay.
* `ProxyNet`: everything on loopback; each member's advertised peer URL is a TCP proxy
  (proxy.py) that can blackhole or delay the traffic of any pair of members. Works for any
  server, without root.
* `ClientProxyNet`: for a cluster someone else runs (--endpoints): one proxy per endpoint,
  so the only faults are between our clients and a member.

`choose()` takes netns when it works here (root, iproute2, a test namespace can be made)
and, if delay is wanted, netem is there too; else the proxies. The choice is printed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable

from bench.jepsen.proxy import CLIENT, ProxyHub
from bench.ports import free_port


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=10)


class Net:
    name = "none"
    supports_delay = False
    supports_partition = False

    def client_endpoint(self, i: int) -> str:
        raise NotImplementedError

    def urls(self, i: int) -> dict[str, str]:
        """listen_client_url, client_url, listen_peer_url, peer_url (advertised)."""
        raise NotImplementedError

    def wrap(self, i: int, argv: list[str]) -> list[str]:
        return argv

    def member_started(self, i: int, pid: int) -> None:
        pass

    def partition(self, pairs: set[frozenset[int]]) -> None:
        raise NotImplementedError

    def heal_partition(self) -> None:
        pass

    def delay(self, delay_ms: int, jitter_ms: int) -> None:
        raise NotImplementedError

    def heal_delay(self) -> None:
        pass

    def close(self) -> None:
        pass


class ProxyNet(Net):
    name = "loopback TCP proxies"
    supports_delay = True
    supports_partition = True

    def __init__(self, n: int, *, seed: int) -> None:
        self.hub = ProxyHub(seed=seed)
        self._ports = [(free_port(), free_port(), free_port()) for _ in range(n)]
        for i, (_client, peer, proxy) in enumerate(self._ports):
            self.hub.add(listen_port=proxy, dst=i, target=("127.0.0.1", peer), clients=False)

    def client_endpoint(self, i: int) -> str:
        return f"127.0.0.1:{self._ports[i][0]}"

    def urls(self, i: int) -> dict[str, str]:
        client, peer, proxy = self._ports[i]
        return {
            "listen_client_url": f"http://127.0.0.1:{client}",
            "client_url": f"http://127.0.0.1:{client}",
            "listen_peer_url": f"http://127.0.0.1:{peer}",
            "peer_url": f"http://127.0.0.1:{proxy}",
        }

    def member_started(self, i: int, pid: int) -> None:
        self.hub.pids[i] = pid

    def partition(self, pairs: set[frozenset[int]]) -> None:
        self.hub.cut(pairs)

    def heal_partition(self) -> None:
        self.hub.heal()

    def delay(self, delay_ms: int, jitter_ms: int) -> None:
        self.hub.set_delay(delay_ms / 1000, jitter_ms / 1000)

    def heal_delay(self) -> None:
        self.hub.set_delay(0.0)

    def close(self) -> None:
        self.hub.close()


class ClientProxyNet(Net):
    """Proxies in front of existing endpoints; a "partition" cuts our clients from members."""

    name = "client-side TCP proxies (existing cluster)"
    supports_delay = True
    supports_partition = True

    def __init__(self, endpoints: list[str], *, seed: int) -> None:
        self.hub = ProxyHub(seed=seed)
        self._listen = []
        for i, ep in enumerate(endpoints):
            host, _, port = ep.split("://")[-1].rstrip("/").rpartition(":")
            listen = free_port()
            self.hub.add(listen_port=listen, dst=i, target=(host, int(port)), clients=True)
            self._listen.append(listen)

    def client_endpoint(self, i: int) -> str:
        return f"127.0.0.1:{self._listen[i]}"

    def partition(self, pairs: set[frozenset[int]]) -> None:
        # Only client links exist here: cut the client from every member named in a pair.
        members = {m for p in pairs for m in p if m != CLIENT}
        self.hub.cut({frozenset((CLIENT, m)) for m in members})

    def heal_partition(self) -> None:
        self.hub.heal()

    def delay(self, delay_ms: int, jitter_ms: int) -> None:
        self.hub.set_delay(delay_ms / 1000, jitter_ms / 1000)

    def heal_delay(self) -> None:
        self.hub.set_delay(0.0)

    def close(self) -> None:
        self.hub.close()


class NetnsNet(Net):
    name = "network namespaces"
    supports_partition = True

    def __init__(self, n: int, *, tag: int, netem: bool) -> None:
        self.n = n
        self.tag = tag
        self.supports_delay = netem
        self.subnet = f"10.{200 + (tag >> 8) % 50}.{tag & 255}"
        self.bridge = f"jpb{tag}"
        self.ns = [f"jepsen-{tag}-{i}" for i in range(n)]
        self._routes: list[tuple[int, str]] = []
        self._made: list[str] = []
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            self._made.append("bridge")
            _ip("addr", "add", f"{self.subnet}.254/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
            for i, ns in enumerate(self.ns):
                _ip("netns", "add", ns)
                self._made.append(ns)
                host, inner = f"jpv{tag}x{i}", "eth0"
                _ip("link", "add", host, "type", "veth", "peer", "name", inner, "netns", ns)
                _ip("link", "set", host, "master", self.bridge)
                _ip("link", "set", host, "up")
                _ip("-n", ns, "addr", "add", f"{self.host(i)}/24", "dev", inner)
                _ip("-n", ns, "link", "set", inner, "up")
                _ip("-n", ns, "link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise

    def host(self, i: int) -> str:
        return f"{self.subnet}.{i + 1}"

    def client_endpoint(self, i: int) -> str:
        return f"{self.host(i)}:2379"

    def urls(self, i: int) -> dict[str, str]:
        h = self.host(i)
        return {"listen_client_url": f"http://{h}:2379", "client_url": f"http://{h}:2379",
                "listen_peer_url": f"http://{h}:2380", "peer_url": f"http://{h}:2380"}

    def wrap(self, i: int, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.ns[i], *argv]

    def partition(self, pairs: set[frozenset[int]]) -> None:
        for pair in pairs:
            a, b = sorted(pair)
            for x, y in ((a, b), (b, a)):
                route = f"{self.host(y)}/32"
                if (x, route) not in self._routes:
                    _ip("-n", self.ns[x], "route", "add", "blackhole", route)
                    self._routes.append((x, route))

    def heal_partition(self) -> None:
        for x, route in self._routes:
            _ip("-n", self.ns[x], "route", "del", "blackhole", route, check=False)
        self._routes = []

    def delay(self, delay_ms: int, jitter_ms: int) -> None:
        for ns in self.ns:
            _ip("netns", "exec", ns, "tc", "qdisc", "replace", "dev", "eth0", "root", "netem",
                "delay", f"{delay_ms}ms", f"{max(jitter_ms, 1)}ms")

    def heal_delay(self) -> None:
        for ns in self.ns:
            _ip("netns", "exec", ns, "tc", "qdisc", "del", "dev", "eth0", "root", check=False)

    def close(self) -> None:
        for ns in self.ns:
            if ns in self._made:
                _ip("netns", "del", ns, check=False)
        if "bridge" in self._made:
            _ip("link", "del", self.bridge, check=False)
        self._made = []


def netns_available() -> tuple[bool, bool, str]:
    """(namespaces work, netem works, why not)."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return False, False, "needs root and iproute2"
    probe = f"jepsen-probe-{os.getpid()}"
    try:
        _ip("netns", "add", probe)
    except (subprocess.SubprocessError, OSError) as exc:
        return False, False, f"ip netns add failed: {exc}"
    try:
        _ip("-n", probe, "link", "set", "lo", "up")
        netem = _ip("netns", "exec", probe, "tc", "qdisc", "add", "dev", "lo", "root",
                    "netem", "delay", "1ms", check=False).returncode == 0
        return True, netem, "" if netem else "no netem in this kernel"
    except (subprocess.SubprocessError, OSError) as exc:
        return False, False, str(exc)
    finally:
        _ip("netns", "del", probe, check=False)


def choose(n: int, *, want_delay: bool, seed: int, prefer: str = "auto") -> tuple[Net, str]:
    """The backend for n members we start, and a sentence saying why."""
    ok, netem, why = netns_available() if prefer in ("auto", "netns") else (False, False, "")
    if prefer == "netns" and not ok:
        raise RuntimeError(f"network namespaces unavailable: {why}")
    if ok and (netem or not want_delay or prefer == "netns"):
        return NetnsNet(n, tag=os.getpid() % 12800, netem=netem), (
            "network namespaces" + ("" if netem else " (no netem: the delay fault is off)"))
    reason = why or "chosen"
    if ok and want_delay and not netem:
        reason = "namespaces work but the kernel has no netem, and delay was asked for"
    return ProxyNet(n, seed=seed), f"loopback TCP proxies ({reason})"


def pairs_between(a: Iterable[int], b: Iterable[int]) -> set[frozenset[int]]:
    bs = list(b)
    return {frozenset((x, y)) for x in a for y in bs if x != y}
