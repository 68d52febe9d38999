from __future__ import annotations

from raft.read_only import ReadOnly
from raft.types import Entry, Message, MessageType, ReadOnlyOption


def _req(ctx: bytes) -> Message:
    return Message(MessageType.READ_INDEX, entries=[Entry(0, 0, data=ctx)])


def test_queue_and_advance() -> None:
    ro = ReadOnly(ReadOnlyOption.SAFE)
    assert ro.last_pending_request_ctx() == b""
    ro.add_request(5, _req(b"a"))
    ro.add_request(6, _req(b"b"))
    ro.add_request(7, _req(b"a"))  # duplicate context: ignored
    assert ro.last_pending_request_ctx() == b"b"
    assert ro.recv_ack(2, b"zz") is None
    assert ro.recv_ack(2, b"b") == {2}
    assert ro.advance(b"zz") == []
    done = ro.advance(b"b")
    assert [(s.index, s.req.entries[0].data) for s in done] == [(5, b"a"), (6, b"b")]
    assert ro.pending == {} and ro.queue == []
