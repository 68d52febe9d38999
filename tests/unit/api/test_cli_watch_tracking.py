"""kvctl watch: which revision each watch resumes from after its stream broke."""

from __future__ import annotations

from api.cli.watch import _Session, _Tracked
from api.proto import kv_pb2, rpc_pb2


def _session_with(*creates: rpc_pb2.WatchCreateRequest) -> _Session:
    s = _Session.__new__(_Session)  # no CLI context needed to track responses
    s.live, s.resend = {}, []
    from collections import deque
    s.unanswered = deque(_Tracked(c) for c in creates)
    return s


def _resp(watch_id: int, revision: int, *, created: bool = False,
          event_revs: tuple[int, ...] = ()) -> rpc_pb2.WatchResponse:
    return rpc_pb2.WatchResponse(
        header=rpc_pb2.ResponseHeader(revision=revision), watch_id=watch_id, created=created,
        events=[kv_pb2.Event(kv=kv_pb2.KeyValue(key=b"k", mod_revision=r)) for r in event_revs])


def test_resume_points_follow_created_events_and_progress() -> None:
    now = rpc_pb2.WatchCreateRequest(key=b"a")
    from_rev = rpc_pb2.WatchCreateRequest(key=b"b", start_revision=3, prev_kv=True)
    never_answered = rpc_pb2.WatchCreateRequest(key=b"c")
    s = _session_with(now, from_rev, never_answered)
    s._track(_resp(0, 10, created=True))  # from now: the first revision it can see is 11
    s._track(_resp(1, 10, created=True))  # from 3 as asked
    s._track(_resp(1, 12, event_revs=(4, 7)))
    s._track(_resp(-1, 15))  # a progress answer: nothing up to 15 is still to come
    s._prepare_resume()
    starts = [(r.create_request.key, r.create_request.start_revision, r.create_request.prev_kv)
              for r in s.resend]
    assert starts == [(b"a", 16, False), (b"b", 16, True), (b"c", 0, False)]
    assert not s.live and len(s.unanswered) == 3


def test_events_move_the_resume_point_past_the_last_printed_revision() -> None:
    s = _session_with(rpc_pb2.WatchCreateRequest(key=b"a"))
    s._track(_resp(0, 5, created=True))
    s._track(_resp(0, 9, event_revs=(6, 9)))
    s._prepare_resume()
    assert s.resend[0].create_request.start_revision == 10
