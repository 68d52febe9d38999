"""etcdctl's default "simple" format: keys and values on their own lines, terse status lines."""

from __future__ import annotations

from api.cli.output.base import (
    DbStatus,
    EndpointHashKV,
    EndpointHealth,
    EndpointStatus,
    Printer,
)
from api.cli.output.text import go_bool, go_string_slice, hex_escape, humanize_bytes
from api.proto import kv_pb2, rpc_pb2

__all__ = ["SimplePrinter", "member_rows", "status_rows"]


def member_rows(r: rpc_pb2.MemberListResponse) -> list[list[str]]:
    return [
        [
            f"{m.ID:x}", "started" if m.name else "unstarted", m.name,
            ",".join(m.peerURLs), ",".join(m.clientURLs), go_bool(m.isLearner),
        ]
        for m in r.members
    ]


def status_rows(statuses: list[EndpointStatus]) -> list[list[str]]:
    rows = []
    for s in statuses:
        r = s.resp
        rows.append([
            s.endpoint, f"{r.header.member_id:x}", r.version, humanize_bytes(r.dbSize),
            go_bool(r.leader == r.header.member_id), go_bool(r.isLearner), str(r.raftTerm),
            str(r.raftIndex), str(r.raftAppliedIndex), ", ".join(r.errors),
        ])
    return rows


def alarm_lines(r: rpc_pb2.AlarmResponse) -> list[str]:
    names = rpc_pb2.AlarmType.Name
    return [f"memberID:{a.memberID} alarm:{names(a.alarm)} " for a in r.alarms]


class SimplePrinter(Printer):
    name = "simple"

    def _bytes(self, data: bytes) -> str:
        return hex_escape(data) if self.hex else data.decode("utf-8", errors="replace")

    def kv(self, kv: kv_pb2.KeyValue) -> None:
        if not self.value_only:
            self.out.line(self._bytes(kv.key))
        self.out.line(self._bytes(kv.value))

    def get(self, r: rpc_pb2.RangeResponse) -> None:
        for kv in r.kvs:
            self.kv(kv)

    def put(self, r: rpc_pb2.PutResponse) -> None:
        self.out.line("OK")
        if r.HasField("prev_kv"):
            self.kv(r.prev_kv)

    def delete(self, r: rpc_pb2.DeleteRangeResponse) -> None:
        self.out.line(str(r.deleted))
        for kv in r.prev_kvs:
            self.kv(kv)

    def txn(self, r: rpc_pb2.TxnResponse) -> None:
        self.out.line("SUCCESS" if r.succeeded else "FAILURE")
        for op in r.responses:
            self.out.line()
            which = op.WhichOneof("response")
            if which == "response_range":
                self.get(op.response_range)
            elif which == "response_put":
                self.put(op.response_put)
            elif which == "response_delete_range":
                self.delete(op.response_delete_range)
            else:
                self.out.line("unexpected response")

    def watch(self, r: rpc_pb2.WatchResponse) -> None:
        for ev in r.events:
            self.out.line(kv_pb2.Event.EventType.Name(ev.type))
            if ev.HasField("prev_kv"):
                self.kv(ev.prev_kv)
            self.kv(ev.kv)

    def lease_grant(self, r: rpc_pb2.LeaseGrantResponse) -> None:
        self.out.line(f"lease {r.ID:016x} granted with TTL({r.TTL}s)")

    def lease_revoke(self, lease_id: int, r: rpc_pb2.LeaseRevokeResponse) -> None:
        self.out.line(f"lease {lease_id:016x} revoked")

    def lease_ttl(self, r: rpc_pb2.LeaseTimeToLiveResponse, keys: bool) -> None:
        if r.TTL == -1:
            self.out.line(f"lease {r.ID:016x} already expired")
            return
        text = f"lease {r.ID:016x} granted with TTL({r.grantedTTL}s), remaining({r.TTL}s)"
        if keys:
            names = [k.decode("utf-8", errors="replace") for k in r.keys]
            text += f", attached keys({go_string_slice(names)})"
        self.out.line(text)

    def lease_keepalive(self, r: rpc_pb2.LeaseKeepAliveResponse) -> None:
        self.out.line(f"lease {r.ID:016x} keepalived with TTL({r.TTL})")

    def lease_list(self, r: rpc_pb2.LeaseLeasesResponse) -> None:
        self.out.line(f"found {len(r.leases)} leases")
        for lease in r.leases:
            self.out.line(f"{lease.ID:016x}")

    def member_add(self, r: rpc_pb2.MemberAddResponse) -> None:
        self.out.line(f"Member {r.member.ID:16x} added to cluster {r.header.cluster_id:16x}")

    def member_remove(self, member_id: int, r: rpc_pb2.MemberRemoveResponse) -> None:
        self.out.line(f"Member {member_id:16x} removed from cluster {r.header.cluster_id:16x}")

    def member_update(self, member_id: int, r: rpc_pb2.MemberUpdateResponse) -> None:
        self.out.line(f"Member {member_id:16x} updated in cluster {r.header.cluster_id:16x}")

    def member_promote(self, member_id: int, r: rpc_pb2.MemberPromoteResponse) -> None:
        self.out.line(f"Member {member_id:16x} promoted in cluster {r.header.cluster_id:16x}")

    def member_list(self, r: rpc_pb2.MemberListResponse) -> None:
        for row in member_rows(r):
            self.out.line(", ".join(row))

    def endpoint_health(self, results: list[EndpointHealth]) -> None:
        for h in results:
            if h.error:
                self.out.err(f"{h.endpoint} is unhealthy: failed to commit proposal: {h.error}")
            else:
                self.out.err(f"{h.endpoint} is healthy: successfully committed proposal: took = {h.took}")

    def endpoint_status(self, statuses: list[EndpointStatus]) -> None:
        for row in status_rows(statuses):
            self.out.line(", ".join(row))

    def endpoint_hashkv(self, hashes: list[EndpointHashKV]) -> None:
        for h in hashes:
            self.out.line(f"{h.endpoint}, {h.resp.hash}")

    def alarm(self, r: rpc_pb2.AlarmResponse) -> None:
        for text in alarm_lines(r):
            self.out.line(text)

    def move_leader(self, leader_id: int, target_id: int, r: rpc_pb2.MoveLeaderResponse) -> None:
        self.out.line(f"Leadership transferred from {leader_id:x} to {target_id:x}")

    def db_status(self, ds: DbStatus) -> None:
        self.out.line(f"{ds.hash:x}, {ds.revision}, {ds.total_key}, {humanize_bytes(ds.total_size)}")
