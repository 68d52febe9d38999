"""Golden scenarios for the MVCC store (tests/scenarios/kvstore/*.txt, tests/datadriven.py).

Each file runs against one fresh Store; every write is applied as the next raft entry.
Commands (keys and values accept Python escapes such as \\x00):

    put <key> <value> [lease=N] [prev-kv] [ignore-value] [ignore-lease]
    del <key> [end=<key>] [prefix] [from-key] [prev-kv]
    get <key> [end=<key>] [prefix] [from-key] [rev=N] [limit=N] [sort=key|version|create|mod|value]
        [order=none|asc|desc] [keys-only] [count-only] [min-mod=N] [max-mod=N]
        [min-create=N] [max-create=N]
    txn                   input lines: "if <target>(<key>) <op> <value>" (target version,
                          create, mod, value, lease; op = != < >), "then <op line>",
                          "else <op line>", where an op line is a put/del/get command
    compact <rev>
    grant <id> <ttl>      revoke <id>      checkpoint <id> <remaining>      ttl <id>
    events <since> [key=<key>] [end=<key>] [limit=N]
    reopen                close and reopen the store (everything must persist)
    status                revision, compact revision, applied index

Output: one line per kv, `key=value c=<create> m=<mod> v=<version> [lease=N]`, and
`error: <etcd message>` for a failed request.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kvstore.errors import KvError
from kvstore.revision import key_prefix_end
from kvstore.store import Store
from kvstore.types import (
    CompactionRequest,
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRangeRequest,
    DeleteRangeResponse,
    Event,
    KeyValue,
    LeaseCheckpointRequest,
    LeaseGrantRequest,
    LeaseGrantResponse,
    LeaseRevokeRequest,
    PutRequest,
    PutResponse,
    RangeRequest,
    RangeResponse,
    Request,
    RequestOp,
    SortOrder,
    SortTarget,
    TxnRequest,
    TxnResponse,
)
from tests.datadriven import Case, run_file

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios" / "kvstore"


def b(text: str) -> bytes:
    return text.encode().decode("unicode_escape").encode("latin-1")


def s(raw: bytes) -> str:
    return raw.decode("latin-1").encode("unicode_escape").decode()


def fmt_kv(kv: KeyValue) -> str:
    lease = f" lease={kv.lease}" if kv.lease else ""
    return f"{s(kv.key)}={s(kv.value)} c={kv.create_revision} m={kv.mod_revision} v={kv.version}{lease}"


def fmt_event(ev: Event) -> str:
    prev = f" prev=({fmt_kv(ev.prev_kv)})" if ev.prev_kv else ""
    return f"{ev.type.name} {s(ev.kv.key)} m={ev.kv.mod_revision}" + (
        f" -> {fmt_kv(ev.kv)}" if ev.type.name == "PUT" else "") + prev


class _Args:
    """Positional words and key=value options of one command line."""

    def __init__(self, words: list[str]) -> None:
        self.pos = [w for w in words if "=" not in w]
        self.opt = dict(w.split("=", 1) for w in words if "=" in w)

    def flag(self, name: str) -> bool:
        return name in self.pos

    def int(self, name: str, default: int = 0) -> int:
        return int(self.opt.get(name, default))


def _range_end(key: bytes, a: _Args) -> bytes:
    if a.flag("prefix"):
        return key_prefix_end(key)
    if a.flag("from-key"):
        return b"\x00"
    return b(a.opt.get("end", ""))


def parse_op(words: list[str]) -> RequestOp:
    cmd, a = words[0], _Args(words[1:])
    if cmd == "put":
        values = [w for w in a.pos[1:] if w not in ("prev-kv", "ignore-value", "ignore-lease")]
        value = b(values[0]) if values and values[0] != '""' else b""
        return PutRequest(b(a.pos[0]), value, lease=a.int("lease"), prev_kv=a.flag("prev-kv"),
            ignore_value=a.flag("ignore-value"), ignore_lease=a.flag("ignore-lease"))
    if cmd == "del":
        key = b(a.pos[0])
        return DeleteRangeRequest(key, _range_end(key, a), prev_kv=a.flag("prev-kv"))
    if cmd == "get":
        key = b(a.pos[0])
        return RangeRequest(
            key, _range_end(key, a), limit=a.int("limit"), revision=a.int("rev"),
            sort_target=SortTarget[a.opt.get("sort", "key").upper()],
            sort_order={"none": SortOrder.NONE, "asc": SortOrder.ASCEND,
                        "desc": SortOrder.DESCEND}[a.opt.get("order", "none")],
            keys_only=a.flag("keys-only"), count_only=a.flag("count-only"),
            min_mod_revision=a.int("min-mod"), max_mod_revision=a.int("max-mod"),
            min_create_revision=a.int("min-create"), max_create_revision=a.int("max-create"))
    raise ValueError(f"unknown op {cmd}")


_TARGETS = {"version": CompareTarget.VERSION, "create": CompareTarget.CREATE,
            "mod": CompareTarget.MOD, "value": CompareTarget.VALUE, "lease": CompareTarget.LEASE}
_RESULTS = {"=": CompareResult.EQUAL, "!=": CompareResult.NOT_EQUAL,
            ">": CompareResult.GREATER, "<": CompareResult.LESS}


def parse_txn(text: str) -> TxnRequest:
    compares: list[Compare] = []
    then: list[RequestOp] = []
    otherwise: list[RequestOp] = []
    for line in text.splitlines():
        word, rest = line.split(None, 1)
        if word == "if":
            lhs, op, value = rest.split(None, 2)
            target_name, key = lhs.rstrip(")").split("(")
            target = _TARGETS[target_name]
            tv: int | bytes = b(value) if target == CompareTarget.VALUE else int(value)
            compares.append(Compare(_RESULTS[op], target, b(key), tv))
        else:
            (then if word == "then" else otherwise).append(parse_op(rest.split()))
    return TxnRequest(tuple(compares), tuple(then), tuple(otherwise))


def fmt_response(resp: object) -> list[str]:
    if isinstance(resp, RangeResponse):
        lines = [fmt_kv(kv) for kv in resp.kvs]
        return [*lines, f"count={resp.count} more={str(resp.more).lower()} rev={resp.revision}"]
    if isinstance(resp, PutResponse):
        prev = f" prev=({fmt_kv(resp.prev_kv)})" if resp.prev_kv else ""
        return [f"rev={resp.revision}{prev}"]
    if isinstance(resp, DeleteRangeResponse):
        return [f"deleted={resp.deleted} rev={resp.revision}",
                *[f"prev=({fmt_kv(kv)})" for kv in resp.prev_kvs]]
    if isinstance(resp, TxnResponse):
        out = [f"{'SUCCESS' if resp.succeeded else 'FAILURE'} rev={resp.revision}"]
        for sub in resp.responses:
            out += ["  " + line for line in fmt_response(sub)]
        return out
    if isinstance(resp, LeaseGrantResponse):
        return [f"lease {resp.id} ttl={resp.ttl} rev={resp.revision}"]
    return [f"rev={getattr(resp, 'revision', '?')}"]


class Runner:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.store = Store(data_dir, durable=False)
        self.index = 0

    def apply(self, req: Request) -> list[str]:
        self.index += 1
        out = self.store.apply(self.index, 1, req)
        if isinstance(out, KvError):
            return [f"error: {out}"]
        assert out is not None
        return fmt_response(out.response)

    def handle(self, case: Case) -> str:
        words = case.directive.split()
        cmd, a = words[0], _Args(words[1:])
        lines: list[str]
        if cmd in ("put", "del"):
            lines = self.apply(parse_op(words))
        elif cmd == "get":
            try:
                lines = fmt_response(self.store.range(parse_op(words)))  # type: ignore[arg-type]
            except KvError as e:
                lines = [f"error: {e}"]
        elif cmd == "txn":
            lines = self.apply(parse_txn(case.input))
        elif cmd == "compact":
            lines = self.apply(CompactionRequest(int(a.pos[0])))
        elif cmd == "grant":
            lines = self.apply(LeaseGrantRequest(int(a.pos[1]), id=int(a.pos[0])))
        elif cmd == "revoke":
            lines = self.apply(LeaseRevokeRequest(int(a.pos[0])))
        elif cmd == "checkpoint":
            lines = self.apply(LeaseCheckpointRequest(int(a.pos[0]), int(a.pos[1])))
        elif cmd == "ttl":
            t = self.store.lease_time_to_live(int(a.pos[0]), keys=True)
            lines = [f"ttl={t.ttl} granted={t.granted_ttl} keys=({','.join(s(k) for k in t.keys)})"]
        elif cmd == "events":
            try:
                evs = self.store.events_since(int(a.pos[0]), key=b(a.opt.get("key", "\\x00")),
                                              range_end=b(a.opt.get("end", "\\x00")),
                                              limit=a.int("limit", 1000))
                lines = [fmt_event(ev) for ev in evs] or ["(none)"]
            except KvError as e:
                lines = [f"error: {e}"]
        elif cmd == "reopen":
            self.store.close()
            self.store = Store(self.data_dir, durable=False)
            lines = ["ok"]
        elif cmd == "status":
            st = self.store
            lines = [f"rev={st.current_revision} compact={st.compact_revision} "
                     f"applied={st.applied_index}"]
        else:
            raise ValueError(f"{case.path}:{case.line}: unknown command {cmd}")
        return "\n".join(lines)


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.txt")), ids=lambda p: p.name)
def test_scenario(path: Path, tmp_path: Path) -> None:
    runner = Runner(tmp_path / "data")
    try:
        run_file(path, runner.handle)
    finally:
        runner.store.close()


def test_scenarios_exist() -> None:
    assert len(list(SCENARIOS.glob("*.txt"))) >= 4
