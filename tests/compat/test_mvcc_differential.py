"""Differential test: kvstore's Store against a real etcd 3.4, request by request.

Seeded random sequences of put / range / delete_range / txn / compact / lease grant and revoke
(tests/compat/mvcc_ops.py) go to a private etcd through our gRPC stubs and to a fresh Store
on a temp dir (each request applied as its own raft entry, reads served by `Store.range`).
The store is closed and reopened now and then, so what it reads back from LMDB is checked too.
Every outcome must be identical: header revision, kvs (create/mod revision, version, value,
lease), count, more, prev_kv(s), deleted, succeeded, nested responses, and for failures the
gRPC code and etcd's exact message. Lease IDs are mapped (etcd picks random ones).

A failure prints SEED=<n>, the index of the first differing request, both outcomes and the
whole request sequence up to it, which replays the divergence on its own.
"""

from __future__ import annotations

import random
from pathlib import Path

import grpc
import pytest

from kvstore import types as t
from kvstore.errors import KvError
from kvstore.store import Store
from tests.compat.etcd_server import EtcdServer, etcd_binary, run_etcd
from tests.compat.mvcc_ops import (
    LONG_TTL_S,
    Error,
    EtcdExecutor,
    Generator,
    Outcome,
    map_leases_in_outcome,
    map_leases_in_request,
)

pytestmark = [
    pytest.mark.etcd,
    pytest.mark.slow,
    pytest.mark.skipif(etcd_binary() is None, reason="real etcd not installed (make debs)"),
]

SEEDS = range(10)
OPS_PER_SEED = 250
REOPEN_P = 0.02


class StoreExecutor:
    """Applies each write as one raft entry; serves ranges from the committed state."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.index = 0

    def execute(self, req: t.Request) -> Outcome:
        if isinstance(req, t.RangeRequest):
            try:
                return self.store.range(req)
            except KvError as e:
                return Error(e.grpc_code, str(e))
        self.index += 1
        out = self.store.apply(self.index, 1, req)
        assert out is not None, "fresh index reported as already applied"
        if isinstance(out, KvError):
            return Error(out.grpc_code, str(out))
        return out.response


def open_store(data_dir: Path) -> Store:
    # etcd's minimum lease TTL is ceil(1.5 x election timeout): 1 s with run_etcd's timers.
    return Store(data_dir, durable=False, min_lease_ttl_s=1)


def run_sequence(seed: int, server: EtcdServer, data_dir: Path) -> None:
    gen = Generator(random.Random(seed))
    reopen = random.Random(seed + 1)
    history: list[t.Request | str] = []
    ours = StoreExecutor(open_store(data_dir))
    try:
        with grpc.insecure_channel(server.endpoint) as channel:
            etcd = EtcdExecutor(channel)
            for i in range(OPS_PER_SEED):
                if reopen.random() < REOPEN_P:
                    # What a restart reads back from LMDB must answer exactly as before.
                    ours.store.close()
                    ours.store = open_store(data_dir)
                    history.append("<store closed and reopened>")
                req = gen.next()
                history.append(req)
                etcd_out = etcd.execute(req)
                store_out = ours.execute(map_leases_in_request(req, gen.leases))
                if (
                    isinstance(req, t.LeaseGrantRequest)
                    and isinstance(etcd_out, t.LeaseGrantResponse)
                    and isinstance(store_out, t.LeaseGrantResponse)
                ):
                    gen.leases.add(
                        etcd_out.id,
                        store_out.id if req.id == 0 else etcd_out.id,
                        usable=req.ttl >= LONG_TTL_S,
                    )
                expected = map_leases_in_outcome(etcd_out, gen.leases)
                if expected != store_out:
                    pytest.fail(_report(seed, i, history, expected, store_out), pytrace=False)
                gen.observe(req, etcd_out, store_out)
    finally:
        ours.store.close()


def _report(
    seed: int, i: int, history: list[t.Request | str], etcd_out: Outcome, ours: Outcome
) -> str:
    lines = [f"SEED={seed}: request #{i} differs", f"  request: {history[-1]!r}"]
    lines += [f"  etcd:    {etcd_out!r}", f"  kvstore: {ours!r}", "  sequence:"]
    n = 0
    for r in history:
        if isinstance(r, str):
            lines.append(f"       {r}")
        else:
            lines.append(f"    {n}: {r!r}")
            n += 1
    return "\n".join(lines)


@pytest.mark.parametrize("seed", SEEDS)
def test_store_matches_etcd(seed: int, tmp_path: Path) -> None:
    with run_etcd() as server:
        run_sequence(seed, server, tmp_path)
