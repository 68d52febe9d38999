"""KV over real gRPC against real etcd and against our servers: semantics, headers, errors.

Every expectation below is etcd 3.4's observed behaviour: the "etcd" parametrization checks
the expectation itself, the others check us against it.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from api.proto import rpc_pb2
from tests.process.grpc_helpers import Stubs, status_of
from tests.process.servers import KINDS, ServerProcess, run_server

pytestmark = pytest.mark.slow

INVALID = grpc.StatusCode.INVALID_ARGUMENT


@pytest.fixture(scope="module", params=KINDS)
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    with run_server(request.param) as s:
        yield s


@pytest.fixture
def stubs(server: ServerProcess) -> Iterator[Stubs]:
    s = Stubs.connect(server.endpoint)
    yield s
    s.close()


def put(stubs: Stubs, key: bytes, value: bytes = b"v", **kw: object) -> rpc_pb2.PutResponse:
    return stubs.kv.Put(rpc_pb2.PutRequest(key=key, value=value, **kw), timeout=5)


def current_revision(stubs: Stubs) -> int:
    rev: int = stubs.kv.Range(rpc_pb2.RangeRequest(key=b"\0", count_only=True), timeout=5).header.revision
    return rev


def test_header_carries_ids_revision_and_term(stubs: Stubs) -> None:
    before = current_revision(stubs)
    resp = put(stubs, b"kv/header")
    h = resp.header
    assert h.cluster_id != 0 and h.member_id != 0 and h.raft_term >= 1
    assert h.revision == before + 1
    status = stubs.maintenance.Status(rpc_pb2.StatusRequest(), timeout=5)
    assert status.header.member_id == h.member_id == status.leader


def test_range_prefix_limit_count_more_and_sort(stubs: Stubs) -> None:
    for k in (b"kv/r/a", b"kv/r/b", b"kv/r/c"):
        put(stubs, k, k[-1:] * 2)
    resp = stubs.kv.Range(
        rpc_pb2.RangeRequest(key=b"kv/r/", range_end=b"kv/r0", limit=2), timeout=5
    )
    assert [kv.key for kv in resp.kvs] == [b"kv/r/a", b"kv/r/b"]
    assert resp.more and resp.count == 3
    resp = stubs.kv.Range(
        rpc_pb2.RangeRequest(key=b"kv/r/", range_end=b"kv/r0", sort_order=2, sort_target=0),
        timeout=5,
    )
    assert [kv.key for kv in resp.kvs] == [b"kv/r/c", b"kv/r/b", b"kv/r/a"]
    resp = stubs.kv.Range(
        rpc_pb2.RangeRequest(key=b"kv/r/", range_end=b"kv/r0", keys_only=True), timeout=5
    )
    assert all(kv.value == b"" for kv in resp.kvs) and len(resp.kvs) == 3


def test_put_prev_kv_and_delete_prev_kvs(stubs: Stubs) -> None:
    put(stubs, b"kv/p", b"1")
    resp = put(stubs, b"kv/p", b"2", prev_kv=True)
    assert resp.prev_kv.value == b"1" and resp.prev_kv.version == 1
    before = current_revision(stubs)
    d = stubs.kv.DeleteRange(rpc_pb2.DeleteRangeRequest(key=b"kv/p", prev_kv=True), timeout=5)
    assert d.deleted == 1 and d.prev_kvs[0].value == b"2" and d.header.revision == before + 1
    # Deleting nothing does not bump the revision.
    d = stubs.kv.DeleteRange(rpc_pb2.DeleteRangeRequest(key=b"kv/p"), timeout=5)
    assert d.deleted == 0 and d.header.revision == before + 1


def test_txn_compare_and_nested_response_headers(stubs: Stubs) -> None:
    put(stubs, b"kv/t", b"x")
    txn = rpc_pb2.TxnRequest(
        compare=[rpc_pb2.Compare(key=b"kv/t", target=rpc_pb2.Compare.VALUE, result=0, value=b"x")],
        success=[
            rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"kv/t2", value=b"y")),
            rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=b"kv/t")),
        ],
    )
    resp = stubs.kv.Txn(txn, timeout=5)
    assert resp.succeeded
    assert resp.responses[1].response_range.kvs[0].value == b"x"
    # Nested responses carry only a revision (cluster/member IDs are zero), as in etcd.
    assert resp.responses[0].response_put.header.member_id == 0


@pytest.mark.parametrize(
    ("request_factory", "code", "message"),
    [
        (lambda s: s.kv.Put(rpc_pb2.PutRequest(key=b"", value=b"v"), timeout=5), INVALID,
         "etcdserver: key is not provided"),
        (lambda s: s.kv.Range(rpc_pb2.RangeRequest(key=b""), timeout=5), INVALID,
         "etcdserver: key is not provided"),
        (lambda s: s.kv.Put(rpc_pb2.PutRequest(key=b"kv/missing", ignore_value=True), timeout=5),
         INVALID, "etcdserver: key not found"),
        (lambda s: s.kv.Put(rpc_pb2.PutRequest(key=b"kv/x", value=b"v", lease=0x1234ABCD), timeout=5),
         grpc.StatusCode.NOT_FOUND, "etcdserver: requested lease not found"),
        (lambda s: s.kv.Put(rpc_pb2.PutRequest(key=b"kv/big", value=b"x" * (1536 * 1024 + 1)), timeout=5),
         INVALID, "etcdserver: request is too large"),
        (lambda s: s.kv.Txn(rpc_pb2.TxnRequest(success=[
            rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"kv/%d" % i)) for i in range(129)
        ]), timeout=5), INVALID, "etcdserver: too many operations in txn request"),
        (lambda s: s.kv.Txn(rpc_pb2.TxnRequest(success=[
            rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"kv/d")),
            rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"kv/d")),
        ]), timeout=5), INVALID, "etcdserver: duplicate key given in txn request"),
        (lambda s: s.kv.Range(rpc_pb2.RangeRequest(key=b"kv/a", revision=10**9), timeout=5),
         grpc.StatusCode.OUT_OF_RANGE, "etcdserver: mvcc: required revision is a future revision"),
    ],
    ids=["put-empty-key", "range-empty-key", "ignore-value-missing", "unknown-lease",
         "too-large", "129-ops", "duplicate-key", "future-rev"],
)
def test_request_errors(stubs: Stubs, request_factory: object, code: grpc.StatusCode, message: str) -> None:
    before = current_revision(stubs)
    assert status_of(lambda: request_factory(stubs)) == (code, message)  # type: ignore[operator]
    assert current_revision(stubs) == before  # nothing was written


def test_compaction_and_compacted_reads(stubs: Stubs) -> None:
    put(stubs, b"kv/c", b"1")
    old = put(stubs, b"kv/c", b"2").header.revision
    put(stubs, b"kv/c", b"3")
    rev = current_revision(stubs)
    resp = stubs.kv.Compact(rpc_pb2.CompactionRequest(revision=rev - 1), timeout=5)
    assert resp.header.revision == rev
    compacted = (grpc.StatusCode.OUT_OF_RANGE, "etcdserver: mvcc: required revision has been compacted")
    assert status_of(lambda: stubs.kv.Range(rpc_pb2.RangeRequest(key=b"kv/c", revision=old - 1), timeout=5)) == compacted
    assert status_of(lambda: stubs.kv.Compact(rpc_pb2.CompactionRequest(revision=old), timeout=5)) == compacted
    assert stubs.kv.Range(rpc_pb2.RangeRequest(key=b"kv/c", revision=rev - 1), timeout=5).kvs[0].value == b"2"


def test_hasleader_metadata_is_accepted_with_a_leader(stubs: Stubs) -> None:
    resp = stubs.kv.Range(
        rpc_pb2.RangeRequest(key=b"kv/none"), timeout=5, metadata=(("hasleader", "true"),)
    )
    assert resp.count == 0
