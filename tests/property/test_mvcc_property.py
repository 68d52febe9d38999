"""MVCC store vs a small in-memory model of etcd semantics (hypothesis state machine).

The model keeps the whole key space at every revision (`states[rev]`: key -> KeyValue) and
the event log; the real store runs on LMDB in a temp dir and is closed and reopened at random
to prove that everything (revision, versions, history, compaction) persists.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from kvstore.errors import (
    CompactedError,
    DuplicateKeyError,
    FutureRevisionError,
    KvError,
    LeaseExistsError,
    LeaseNotFoundError,
)
from kvstore.store import Store
from kvstore.types import (
    ApplyResult,
    CompactionRequest,
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRangeRequest,
    DeleteRangeResponse,
    Event,
    EventType,
    KeyValue,
    LeaseGrantRequest,
    LeaseGrantResponse,
    LeaseRevokeRequest,
    PutRequest,
    PutResponse,
    RangeRequest,
    Request,
    TxnRequest,
    TxnResponse,
)

KEYS = [b"a", b"a\x00", b"ab", b"b", b"c"]
keys_st = st.sampled_from(KEYS)
values_st = st.binary(max_size=4)
ends_st = st.sampled_from([b"", b"\x00", b"ab", b"b", b"c", b"d"])


def in_range(k: bytes, key: bytes, end: bytes) -> bool:
    if end == b"":
        return k == key
    if end == b"\x00":
        return k >= key
    return key <= k < end


class MvccMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="mvcc-prop-"))
        self.store = Store(self.dir, durable=False, compaction_batch_limit=3)
        self.index = 0
        self.states: list[dict[bytes, KeyValue]] = [{}, {}]  # index = revision; rev 1 is empty
        self.compact = -1
        self.events: list[Event] = []
        self.leases: set[int] = set()

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def rev(self) -> int:
        return len(self.states) - 1

    def apply(self, req: Request) -> ApplyResult | KvError:
        self.index += 1
        out = self.store.apply(self.index, 1, req)
        assert out is not None
        return out

    # --- model helpers --------------------------------------------------------------------

    def model_write(
        self, puts: dict[bytes, bytes], dels: list[bytes], lease: int = 0
    ) -> list[Event]:
        """Apply deletes then puts at one new revision (callers keep the keys disjoint)."""
        cur = self.states[-1]
        new = dict(cur)
        main = self.rev + 1
        evs: list[Event] = []
        for k in sorted(dels):
            evs.append(Event(EventType.DELETE, KeyValue(k, 0, main, 0, b"", 0), cur[k]))
            del new[k]
        for k, v in puts.items():
            prev = cur.get(k)
            kv = KeyValue(k, prev.create_revision if prev else main, main,
                          prev.version + 1 if prev else 1, v, lease)
            new[k] = kv
            evs.append(Event(EventType.PUT, kv, prev))
        if evs:
            self.states.append(new)
            self.events.extend(evs)
        return evs

    # --- rules ----------------------------------------------------------------------------

    @rule(key=keys_st, value=values_st, prev=st.booleans(), lease=st.sampled_from([0, 0, 1, 2]))
    def put(self, key: bytes, value: bytes, prev: bool, lease: int) -> None:
        if lease and lease not in self.leases:
            assert self.apply(PutRequest(key, value, lease=lease)) == LeaseNotFoundError()
            return
        before = self.states[-1].get(key)
        evs = self.model_write({key: value}, [], lease)
        out = self.apply(PutRequest(key, value, lease=lease, prev_kv=prev))
        assert isinstance(out, ApplyResult)
        assert out.response == PutResponse(before if prev else None, self.rev)
        assert list(out.events) == evs

    @initialize()
    def first_lease(self) -> None:
        self.grant(1)  # most runs then attach, move and revoke keys

    @rule(lease=st.sampled_from([1, 2]))
    def grant(self, lease: int) -> None:
        out = self.apply(LeaseGrantRequest(60, id=lease))
        if lease in self.leases:
            assert out == LeaseExistsError()
        else:
            assert isinstance(out, ApplyResult) and out.response == LeaseGrantResponse(
                lease, 60, self.rev)
            self.leases.add(lease)

    @rule(lease=st.sampled_from([1, 2]))
    def revoke(self, lease: int) -> None:
        out = self.apply(LeaseRevokeRequest(lease))
        if lease not in self.leases:
            assert out == LeaseNotFoundError()
            return
        self.leases.discard(lease)
        attached = [k for k, kv in self.states[-1].items() if kv.lease == lease]
        evs = self.model_write({}, attached)  # all of them in ONE revision
        assert isinstance(out, ApplyResult)
        assert out.revision == self.rev and list(out.events) == evs

    @rule(key=keys_st, end=ends_st)
    def delete(self, key: bytes, end: bytes) -> None:
        victims = [k for k in self.states[-1] if in_range(k, key, end)]
        evs = self.model_write({}, victims)
        out = self.apply(DeleteRangeRequest(key, end))
        assert isinstance(out, ApplyResult)
        assert out.response == DeleteRangeResponse(len(victims), (), self.rev)
        # deletes come out in key order
        assert [e.kv.key for e in out.events] == [e.kv.key for e in evs]

    @rule(ckey=keys_st, version=st.integers(0, 3), pkey=keys_st, value=values_st,
          dkey=keys_st, dend=ends_st)
    def txn(self, ckey: bytes, version: int, pkey: bytes, value: bytes, dkey: bytes,
            dend: bytes) -> None:
        req = TxnRequest(
            compare=(Compare(CompareResult.EQUAL, CompareTarget.VERSION, ckey, version),),
            success=(DeleteRangeRequest(dkey, dend), PutRequest(pkey, value)),
            failure=(RangeRequest(ckey),),
        )
        # etcd's interval rule ("from key" deletes form an empty interval)
        dup = (dend == b"" and dkey == pkey) or (
            dend not in (b"", b"\x00") and dkey <= pkey < dend)
        if dup:
            assert self.apply(req) == DuplicateKeyError()
            return
        cur = self.states[-1]
        ok = (cur[ckey].version if ckey in cur else 0) == version
        out = self.apply(req)
        assert isinstance(out, ApplyResult)
        resp = out.response
        assert isinstance(resp, TxnResponse) and resp.succeeded is ok
        if ok:
            victims = [k for k in cur if in_range(k, dkey, dend) and k != pkey]
            if pkey in cur and in_range(pkey, dkey, dend):
                # from-key delete then put of the same key: tombstone then re-create
                self.model_write({}, victims + [pkey])
                evs_put = self.model_write_same_rev(pkey, value)
                del evs_put
            else:
                self.model_write({pkey: value}, victims)
        assert out.revision == self.rev

    def model_write_same_rev(self, key: bytes, value: bytes) -> list[Event]:
        """A put in the same revision right after its key was deleted (a new generation)."""
        main = self.rev
        kv = KeyValue(key, main, main, 1, value, 0)
        self.states[-1][key] = kv
        ev = Event(EventType.PUT, kv, None)
        self.events.append(ev)
        return [ev]

    @rule(data=st.data())
    def compact_at(self, data: st.DataObject) -> None:
        rev = data.draw(st.integers(0, self.rev + 1))
        out = self.apply(CompactionRequest(rev))
        if rev <= self.compact:
            assert out == CompactedError()
        elif rev > self.rev:
            assert out == FutureRevisionError()
        else:
            assert isinstance(out, ApplyResult) and out.revision == self.rev
            self.compact = rev

    @rule(data=st.data(), key=keys_st, end=ends_st, limit=st.integers(0, 3))
    def range_at(self, data: st.DataObject, key: bytes, end: bytes, limit: int) -> None:
        rev = data.draw(st.integers(-1, self.rev + 1))
        req = RangeRequest(key, end, limit=limit, revision=rev)
        if rev > self.rev:
            try:
                self.store.range(req)
                raise AssertionError("expected FutureRevisionError")
            except FutureRevisionError:
                return
        if 0 < rev < self.compact:
            try:
                self.store.range(req)
                raise AssertionError("expected CompactedError")
            except CompactedError:
                return
        state = self.states[rev if rev > 0 else self.rev]
        want = sorted((kv for k, kv in state.items() if in_range(k, key, end)),
                      key=lambda kv: kv.key)
        resp = self.store.range(req)
        assert resp.count == len(want)
        assert resp.revision == self.rev
        n = limit if limit > 0 else len(want)
        assert list(resp.kvs) == want[:n]
        assert resp.more == (len(want) > n)

    @rule(data=st.data(), key=keys_st, end=ends_st)
    def history(self, data: st.DataObject, key: bytes, end: bytes) -> None:
        # from the compact revision on (a start at it is served, as etcd serves it)
        start = data.draw(st.integers(max(self.compact, 1), self.rev + 1))
        got = self.store.events_since(start, key=key, range_end=end, limit=10_000)
        want = [e for e in self.events
                if e.kv.mod_revision >= start and in_range(e.kv.key, key, end)]
        assert [(e.type, e.kv) for e in got] == [(e.type, e.kv) for e in want]
        # prev_kv as etcd's watch sends it: the live version at rev - 1, none for a create.
        for e in got:
            create = e.type == EventType.PUT and e.kv.version == 1
            compacted = e.kv.mod_revision - 1 < self.compact
            expected = (None if create or compacted
                        else self.states[e.kv.mod_revision - 1].get(e.kv.key))
            assert e.prev_kv == expected

    @rule()
    def reopen(self) -> None:
        self.store.close()
        self.store = Store(self.dir, durable=False, compaction_batch_limit=3)

    @invariant()
    def revision_matches(self) -> None:
        assert self.store.current_revision == self.rev
        assert self.store.compact_revision == max(self.compact, 0)
        assert self.store.applied_index == self.index


MvccMachine.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestMvcc = MvccMachine.TestCase
