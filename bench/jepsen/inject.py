"""--inject-bug: client-side corruptions that a correct checker must catch.

They sit between the client library and the history, so the cluster itself stays correct
and each mode must be caught by its own checker:

* stale-read  (linearizability): a read of key k returns a value v_old that some process
  saw complete before an acknowledged write W to k was invoked, where W completed before
  this read was invoked. Values are unique, so v_old can never come back: no linearization.
* lost-write  (durability): a put is acknowledged without ever being sent, with a header
  revision the process already saw (so only the missing write gives it away).
* watch-drop  (watch): one delivered event is not passed on (a gap).
* watch-dup   (watch): one delivered event is passed on twice (a duplicate).

Each mode fires a few times per run, spaced out, once its preconditions hold.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MODES = ("stale-read", "lost-write", "watch-drop", "watch-dup")
FIRES_MAX = 3


@dataclass(slots=True)
class Injector:
    mode: str = ""
    fired: int = 0
    # key -> [(value, mod_revision, observation completed at)]
    _observed: dict[str, list[tuple[str, int, float]]] = field(default_factory=dict)
    # key -> (value, invoked at, completed at) of the latest acknowledged write
    _acked: dict[str, tuple[str, float, float]] = field(default_factory=dict)
    _puts: int = 0
    _events: int = 0
    _last_fire_s: float = -1e9

    def observe(self, key: str, value: str | None, mod_revision: int, at_s: float) -> None:
        if value is not None and self.mode == "stale-read":
            obs = self._observed.setdefault(key, [])
            obs.append((value, mod_revision, at_s))
            del obs[:-50]

    def acked_write(self, key: str, value: str, invoke_s: float, complete_s: float) -> None:
        prev = self._acked.get(key)
        if prev is None or complete_s > prev[2]:
            self._acked[key] = (value, invoke_s, complete_s)

    def _may_fire(self, now_s: float) -> bool:
        return self.fired < FIRES_MAX and now_s - self._last_fire_s > 2.0

    def stale_read(self, key: str, invoke_s: float) -> tuple[str, int] | None:
        """A stale (value, mod_revision) to answer instead of the real one, or None."""
        if self.mode != "stale-read" or not self._may_fire(invoke_s):
            return None
        w = self._acked.get(key)
        if w is None or w[2] >= invoke_s:
            return None
        for value, mod_rev, seen_s in reversed(self._observed.get(key, [])):
            if seen_s < w[1] and value != w[0]:
                self.fired += 1
                self._last_fire_s = invoke_s
                return value, mod_rev
        return None

    def drop_put(self, now_s: float) -> bool:
        if self.mode != "lost-write":
            return False
        self._puts += 1
        if self._puts >= 20 and self._may_fire(now_s):
            self.fired += 1
            self._last_fire_s = now_s
            return True
        return False

    def watch_copies(self, watcher: int, now_s: float) -> int:
        """How many times to record the event just delivered to `watcher` (normally 1)."""
        if watcher != 0 or self.mode not in ("watch-drop", "watch-dup"):
            return 1
        self._events += 1
        if self._events >= 10 and self._may_fire(now_s):
            self.fired += 1
            self._last_fire_s = now_s
            return 0 if self.mode == "watch-drop" else 2
        return 1
