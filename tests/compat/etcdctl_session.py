"""A scripted etcdctl 3.4 session and the normalisation that makes two runs comparable.

`SESSION` is a list of `Step`s: etcdctl arguments (ETCDCTL_API=3, `--endpoints` added), an
optional stdin, and how to compare. `run_session(endpoint, ...)` runs them in order against
one server and returns normalised `Outcome`s (stdout, stderr, exit code). Run against real
etcd and against kvstore, the two lists must be equal: that is the differential test.

What is normalised, and why each is legitimate:

* cluster and member IDs (derived from the peer URLs, whose ports differ), in decimal and
  hex; lease IDs (etcd mixes in its member ID and clock), numbered in order of appearance;
* endpoints and URLs (free ports differ);
* timestamps and the random client UUID in clientv3's zap warning lines; latencies
  (`took = ...`); the seconds left on a lease (`remaining(119s)`, `"ttl":119`);
* database sizes, raft indexes, hash values and the server version, which depend on the
  storage engine and the raft log, not on the API (endpoint status, endpoint hashkv);
* `snapshot save`: only the exit code and the "Snapshot saved at" line.

Revisions and raft terms are NOT normalised: a fresh single member must agree on them.
Steps may refer to the n-th lease granted so far as `{lease1}`, `{lease2}`, ... (hex).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from api.proto import rpc_pb2

BIG_VALUE_BYTES = 1536 * 1024 + 100 * 1024  # over --max-request-bytes, under the 2 MiB gRPC limits


@dataclass(frozen=True, slots=True)
class Step:
    args: tuple[str, ...]
    stdin: str | bytes | None = None
    timeout_s: float = 10.0  # a watch step is stopped after this (exit code "timeout")
    only_saved_line: bool = False  # snapshot save
    protobuf: type | None = None  # -w protobuf: decode, zero the IDs, compare hex
    label: str = ""


@dataclass(frozen=True, slots=True)
class Outcome:
    label: str
    stdout: str
    stderr: str
    exit: str


@dataclass
class Ids:
    cluster_id: int
    member_id: int
    endpoint: str
    peer_url: str
    leases: list[int] = field(default_factory=list)


def _txn(*lines: str) -> str:
    return "\n".join(lines) + "\n"


def _ops(n: int) -> str:
    return _txn("", *(f"put /e2e/many/{i} v" for i in range(n)), "", "")


def _s(*args: str, **kw: object) -> Step:
    return Step(tuple(args), **kw)  # type: ignore[arg-type]


SESSION: list[Step] = [
    # --- put / get / del ----------------------------------------------------------------
    _s("del", "--prefix", "/demo/"),
    _s("put", "/demo/a", "1"),
    _s("-w", "json", "put", "/demo/a", "1"),
    _s("put", "/demo/b", "2"),
    _s("put", "/demo/c", "3"),
    _s("put", "--prev-kv", "/demo/a", "11"),
    _s("-w", "json", "put", "--prev-kv", "/demo/a", "111"),
    _s("put", "--ignore-value", "/demo/b"),
    _s("put", "--ignore-value", "/demo/missing"),
    _s("put", "/demo/stdin", stdin="from-stdin\n"),
    _s("put", "--", "/demo/dash", "-v"),
    _s("get", "/demo/a"),
    _s("-w", "json", "get", "/demo/a"),
    _s("-w", "fields", "get", "/demo/a"),
    _s("-w", "protobuf", "get", "/demo/a", protobuf=rpc_pb2.RangeResponse),
    _s("-w", "table", "get", "/demo/a"),
    _s("get", "/demo/nope"),
    _s("-w", "json", "get", "/demo/nope"),
    _s("get", "--prefix", "/demo/"),
    _s("-w", "json", "get", "--prefix", "/demo/"),
    _s("-w", "json", "get", "--prefix", "--limit", "2", "/demo/"),
    _s("get", "/demo/a", "/demo/c"),
    _s("get", "--from-key", "/demo/b"),
    _s("get", "--prefix", "--keys-only", "/demo/"),
    _s("get", "--prefix", "--print-value-only", "/demo/"),
    _s("get", "--prefix", "--count-only", "/demo/"),
    _s("-w", "json", "get", "--prefix", "--count-only", "/demo/"),
    _s("get", "--prefix", "--sort-by=MODIFY", "--order=DESCEND", "/demo/"),
    _s("get", "--prefix", "--sort-by=VALUE", "--order=ASCEND", "/demo/"),
    _s("get", "--prefix", "--sort-by=CREATE", "--order=DESCEND", "--limit", "2", "/demo/"),
    _s("get", "--prefix", "--sort-by=VERSION", "/demo/"),
    _s("get", "--prefix", "--consistency=s", "/demo/"),
    _s("--hex", "get", "--prefix", "/demo/"),
    _s("get", "--rev=6", "/demo/a"),
    _s("-w", "json", "get", "--prefix", "--limit", "1", "--rev=7", "/demo/"),
    _s("get", "--prefix", "--limit", "2", "--rev=9", "--keys-only", "/demo/"),
    _s("-w", "fields", "put", "/demo/f", "x"),
    _s("-w", "fields", "del", "--prev-kv", "/demo/f"),
    _s("-w", "fields", "txn", stdin=_txn('mod("/demo/a") > "0"', "", "get /demo/a", "", "", "")),
    _s("get", "--rev=99999999", "/demo/a"),
    _s("del", "/demo/c"),
    _s("-w", "json", "del", "/demo/c"),
    _s("del", "--prev-kv", "/demo/stdin"),
    _s("-w", "json", "del", "--prefix", "--prev-kv", "/demo/dash"),
    _s("del", "/demo/x", "/demo/z"),
    _s("put", "/demo/fk/1", "a"),
    _s("put", "/demo/fk/2", "b"),
    _s("del", "--from-key", "/demo/fk/"),
    # --- txn --------------------------------------------------------------------------------
    _s("txn", stdin=_txn('value("/demo/a") = "111"', "", "put /demo/t ok", "get /demo/a", "",
                         "put /demo/t failed", "", "")),
    _s("txn", stdin=_txn('value("/demo/a") = "111"', "", "put /demo/t ok", "", "put /demo/t failed")),
    _s("-w", "json", "txn", stdin=_txn('value("/demo/a") = "111"', "", "put /demo/t ok2", "", "", "")),
    _s("txn", stdin=_txn('mod("/demo/a") = "1"', "", "put /demo/t nope", "", "get /demo/t",
                         "del /demo/t", "", "")),
    _s("-w", "json", "txn", stdin=_txn('mod("/demo/a") = "1"', "", "put /demo/t nope", "",
                                       "get /demo/t", "", "")),
    _s("txn", stdin=_txn('mod("/demo/new") = "0"', "", "put /demo/new v1", "", "get /demo/new", "", "")),
    _s("txn", stdin=_txn('mod("/demo/new") = "0"', "", "put /demo/new v2", "", "get /demo/new", "", "")),
    _s("txn", stdin=_txn('ver("/demo/a") > "0"', 'val("/demo/b") != "zzz"', "",
                         "get --prefix /demo/", "", "", "")),
    _s("txn", stdin=_txn('bogus("/demo/a") = "1"', "", "", "")),
    _s("txn", stdin=_txn("", "put /demo/d 1", "put /demo/d 2", "", "")),
    _s("txn", stdin=_ops(129), label="txn with 129 ops"),
    _s("txn", stdin=_ops(128), label="txn with 128 ops"),
    # --- bad input ----------------------------------------------------------------------------
    _s("put", "", "v"),
    _s("get", ""),
    _s("put", "/demo/big", stdin=b"x" * BIG_VALUE_BYTES, label="put oversize value"),
    _s("put", "--lease=1234abcd", "/demo/l/2", "x"),
    # --- watch (history replay; stopped by a timeout) ---------------------------------------------
    _s("put", "/demo/w/1", "x"),
    _s("put", "/demo/w/1", "y"),
    _s("del", "/demo/w/1"),
    _s("put", "/demo/w/2", "p"),
    _s("watch", "--prefix", "--rev=1", "/demo/w/", timeout_s=1.5),
    _s("-w", "json", "watch", "--prefix", "--prev-kv", "--rev=1", "/demo/w/", timeout_s=1.5),
    # --- leases ------------------------------------------------------------------------------------
    _s("lease", "grant", "60"),
    _s("-w", "json", "lease", "grant", "60"),
    _s("lease", "grant", "120"),
    _s("put", "--lease={lease3}", "/demo/l/1", "leased"),
    _s("put", "--ignore-lease", "/demo/l/1", "leased2"),
    _s("get", "-w", "json", "/demo/l/1"),
    _s("lease", "timetolive", "{lease3}"),
    _s("-w", "json", "lease", "timetolive", "{lease3}"),
    _s("lease", "timetolive", "--keys", "{lease3}"),
    _s("-w", "json", "lease", "timetolive", "--keys", "{lease3}"),
    _s("lease", "keep-alive", "--once", "{lease3}"),
    _s("-w", "json", "lease", "keep-alive", "--once", "{lease3}"),
    _s("lease", "keep-alive", "{lease1}", timeout_s=1.5, label="lease keep-alive (streaming)"),
    _s("-w", "fields", "lease", "grant", "30"),
    _s("lease", "list"),
    _s("-w", "json", "lease", "list"),
    _s("-w", "json", "lease", "revoke", "{lease2}"),
    _s("lease", "revoke", "{lease3}"),
    _s("get", "/demo/l/1"),
    _s("lease", "timetolive", "{lease3}"),
    _s("lease", "keep-alive", "--once", "{lease3}"),
    _s("lease", "revoke", "{lease3}"),
    _s("lease", "grant", "0"),
    _s("lease", "grant", "1"),
    # --- cluster / maintenance -----------------------------------------------------------------------
    _s("member", "list"),
    _s("-w", "json", "member", "list"),
    _s("-w", "table", "member", "list"),
    _s("-w", "fields", "member", "list"),
    _s("endpoint", "status"),
    _s("-w", "json", "endpoint", "status"),
    _s("-w", "table", "endpoint", "status"),
    _s("-w", "fields", "endpoint", "status"),
    _s("endpoint", "health"),
    _s("-w", "json", "endpoint", "health"),
    _s("endpoint", "hashkv"),
    _s("-w", "json", "endpoint", "hashkv"),
    _s("move-leader", "{member_hex}"),
    _s("alarm", "list"),
    _s("-w", "json", "alarm", "list"),
    _s("alarm", "disarm"),
    _s("defrag"),
    _s("-w", "json", "defrag"),
    _s("version"),
    # --- compaction and what it makes unreachable ---------------------------------------------------------
    _s("-w", "json", "get", "/demo/a"),
    _s("compaction", "5"),
    _s("-w", "json", "compaction", "6"),
    _s("compaction", "--physical", "7"),
    _s("compaction", "2"),
    _s("get", "--rev=2", "/demo/a"),
    _s("-w", "json", "endpoint", "hashkv"),
    _s("watch", "--rev=2", "/demo/a", timeout_s=5.0),
    _s("get", "--prefix", "/demo/"),
    # --- snapshot ---------------------------------------------------------------------------------------
    _s("snapshot", "save", "{workdir}/snap.db", only_saved_line=True),
]


def _subst(text: str, ids: Ids, workdir: Path) -> str:
    out = text.replace("{workdir}", str(workdir)).replace("{member_hex}", f"{ids.member_id:x}")
    for i, lease_id in enumerate(ids.leases, start=1):
        out = out.replace(f"{{lease{i}}}", f"{lease_id:x}")
    return out


_ZAP_TS = re.compile(r'"ts":("[^"]*"|[0-9.e+]+)')
_CLIENT_UUID = re.compile(r"client-[0-9a-f-]{36}")
_TOOK = re.compile(r"(took = |\"took\":\")[0-9.]+(µs|ms|s)")
_REMAINING = re.compile(r"remaining\(\d+s\)")
_JSON_TTL = re.compile(r'"ttl":\d+')
_SIZE = re.compile(r"\b\d+(\.\d+)? (B|kB|MB|GB)\b")
_JSON_NUM = re.compile(r'"(dbSize|dbSizeInUse|raftIndex|raftAppliedIndex|hash)":\d+')
_FIELDS_NUM = re.compile(r'"(DBSize|RaftIndex|RaftAppliedIndex|Hash)" : \d+')
_JSON_VERSION = re.compile(r'"version":"[0-9.]+"')
_FIELDS_VERSION = re.compile(r'"Version" : "[0-9.]+"')


def normalise(text: str, ids: Ids, *, step: Step) -> str:
    text = _ZAP_TS.sub('"ts":<TS>', text)
    text = _CLIENT_UUID.sub("client-<UUID>", text)
    text = _TOOK.sub(r"\1<TOOK>", text)
    text = text.replace(ids.peer_url, "<PEER_URL>").replace(ids.endpoint, "<EP>")
    text = re.sub(rf"\b{ids.cluster_id}\b", "<CLUSTER_ID>", text)
    text = re.sub(rf"\b{ids.member_id}\b", "<MEMBER_ID>", text)
    # etcdctl prints member IDs with %x and lease IDs with %016x: allow leading zeros.
    text = re.sub(rf"\b0*{ids.cluster_id:x}\b", "<CLUSTER_HEX>", text)
    text = re.sub(rf"\b0*{ids.member_id:x}\b", "<MEMBER_HEX>", text)
    for i, lease_id in enumerate(ids.leases, start=1):
        text = re.sub(rf"\b{lease_id}\b", f"<LEASE{i}>", text)
        text = re.sub(rf"\b0*{lease_id:x}\b", f"<LEASE{i}_HEX>", text)
    text = _REMAINING.sub("remaining(<R>s)", text)
    if "timetolive" in step.args:
        text = _JSON_TTL.sub('"ttl":<R>', text)
    if "endpoint" in step.args:
        text = _SIZE.sub("<SIZE>", text)
        text = _JSON_NUM.sub(r'"\1":<N>', text)
        text = _FIELDS_NUM.sub(r'"\1" : <N>', text)
        text = _JSON_VERSION.sub('"version":<V>', text)
        text = _FIELDS_VERSION.sub('"Version" : <V>', text)
        # simple/table status rows: "<EP>, <MEMBER_HEX>, 3.4.23, <SIZE>, true, false, 2, 51, 51, "
        text = re.sub(r"(<MEMBER_HEX>[ ,|]+)[0-9.]+([ ,|]+<SIZE>[ ,|]+\w+[ ,|]+\w+[ ,|]+\d+[ ,|]+)\d+([ ,|]+)\d+",
                      r"\1<V>\2<N>\3<N>", text)
        text = re.sub(r"(<EP>, )\d+$", r"\1<HASH>", text, flags=re.M)
    if "endpoint" in step.args or "table" in step.args:
        # Table cells are padded to the widest value: sizes and IDs (%x) differ in width.
        text = re.sub(r" +", " ", re.sub(r"-+", "-", text))
    return text


def _protobuf_hex(raw: bytes, message_type: type) -> str:
    msg = message_type.FromString(raw)  # type: ignore[attr-defined]
    msg.header.cluster_id = 0
    msg.header.member_id = 0
    return str(msg.SerializeToString().hex())


def run_session(
    etcdctl: str,
    ids: Ids,
    workdir: Path,
    *,
    steps: Sequence[Step] = SESSION,
    lease_ids_from: Callable[[], list[int]] | None = None,
) -> list[Outcome]:
    """Run `steps` against ids.endpoint and return the normalised outcomes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    env["ETCDCTL_API"] = "3"
    outcomes: list[Outcome] = []
    for step in steps:
        args = [_subst(a, ids, workdir) for a in step.args]
        stdin = step.stdin.encode() if isinstance(step.stdin, str) else step.stdin
        cmd = [etcdctl, f"--endpoints={ids.endpoint}", "--dial-timeout=3s", *args]
        try:
            proc = subprocess.run(
                cmd, input=stdin, capture_output=True, env=env, timeout=step.timeout_s,
                cwd=workdir,
            )
            stdout, stderr, exit_code = proc.stdout, proc.stderr, str(proc.returncode)
        except subprocess.TimeoutExpired as exc:
            stdout, stderr, exit_code = exc.stdout or b"", exc.stderr or b"", "timeout"
        for m in re.finditer(rb"lease ([0-9a-f]+) granted", stdout):
            ids.leases.append(int(m.group(1), 16))
        if "grant" in args:
            for m in re.finditer(rb'"ID"( : |:)(\d+)', stdout):
                ids.leases.append(int(m.group(2)))
        label = step.label or " ".join(a if len(a) < 60 else a[:57] + "..." for a in step.args)
        if step.only_saved_line:
            saved = [ln for ln in stdout.decode(errors="replace").splitlines() if ln.startswith("Snapshot saved at")]
            outcomes.append(Outcome(label, "\n".join(saved).replace(str(workdir), "<WORK>"), "", exit_code))
            continue
        if step.protobuf is not None and exit_code == "0":
            out_text = _protobuf_hex(stdout, step.protobuf)
        else:
            out_text = stdout.decode(errors="replace")
        outcomes.append(
            Outcome(
                label,
                normalise(out_text, ids, step=step),
                normalise(stderr.decode(errors="replace"), ids, step=step),
                exit_code,
            )
        )
    return outcomes
