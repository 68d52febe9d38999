"""-w fields: one `"Name" : value` line per field, as etcdctl's fields printer writes them."""

from __future__ import annotations

from api.cli.output.base import DbStatus, EndpointHashKV, EndpointHealth, EndpointStatus, Printer
from api.cli.output.text import go_bool, go_quote, go_string_slice
from api.proto import kv_pb2, rpc_pb2

__all__ = ["FieldsPrinter"]


class FieldsPrinter(Printer):
    name = "fields"

    def _f(self, name: str, value: object) -> None:
        text = go_bool(value) if isinstance(value, bool) else str(value)
        self.out.line(f'"{name}" : {text}')

    def _q(self, data: bytes | str) -> str:
        return go_quote(data)  # etcdctl's fields printer ignores --hex

    def hdr(self, h: rpc_pb2.ResponseHeader) -> None:
        self._f("ClusterID", h.cluster_id)
        self._f("MemberID", h.member_id)
        self._f("Revision", h.revision)
        self._f("RaftTerm", h.raft_term)

    def kv(self, kv: kv_pb2.KeyValue, prefix: str = "") -> None:
        self._f(f"{prefix}Key", self._q(kv.key))
        self._f(f"{prefix}CreateRevision", kv.create_revision)
        self._f(f"{prefix}ModRevision", kv.mod_revision)
        self._f(f"{prefix}Version", kv.version)
        self._f(f"{prefix}Value", self._q(kv.value))
        self._f(f"{prefix}Lease", kv.lease)

    def get(self, r: rpc_pb2.RangeResponse) -> None:
        self.hdr(r.header)
        for kv in r.kvs:
            self.kv(kv)
        self._f("More", r.more)
        self._f("Count", r.count)

    def put(self, r: rpc_pb2.PutResponse) -> None:
        self.hdr(r.header)
        if r.HasField("prev_kv"):
            self.kv(r.prev_kv, "Prev")

    def delete(self, r: rpc_pb2.DeleteRangeResponse) -> None:
        self.hdr(r.header)
        self._f("Deleted", r.deleted)
        for kv in r.prev_kvs:
            self.kv(kv, "Prev")

    def txn(self, r: rpc_pb2.TxnResponse) -> None:
        self.hdr(r.header)
        self._f("Succeeded", r.succeeded)
        for op in r.responses:
            which = op.WhichOneof("response")
            if which == "response_range":
                self.get(op.response_range)
            elif which == "response_put":
                self.put(op.response_put)
            elif which == "response_delete_range":
                self.delete(op.response_delete_range)

    def watch(self, r: rpc_pb2.WatchResponse) -> None:
        self.hdr(r.header)
        for ev in r.events:
            self._f("Type", kv_pb2.Event.EventType.Name(ev.type))
            if ev.HasField("prev_kv"):
                self.kv(ev.prev_kv, "Prev")
            self.kv(ev.kv)

    def lease_grant(self, r: rpc_pb2.LeaseGrantResponse) -> None:
        self.hdr(r.header)
        self._f("ID", r.ID)
        self._f("TTL", r.TTL)

    def lease_revoke(self, lease_id: int, r: rpc_pb2.LeaseRevokeResponse) -> None:
        self.hdr(r.header)

    def lease_keepalive(self, r: rpc_pb2.LeaseKeepAliveResponse) -> None:
        self.hdr(r.header)
        self._f("ID", r.ID)
        self._f("TTL", r.TTL)

    def lease_ttl(self, r: rpc_pb2.LeaseTimeToLiveResponse, keys: bool) -> None:
        self.hdr(r.header)
        self._f("ID", r.ID)
        self._f("TTL", r.TTL)
        self._f("GrantedTTL", r.grantedTTL)
        for k in r.keys:
            self._f("Key", self._q(k))

    def lease_list(self, r: rpc_pb2.LeaseLeasesResponse) -> None:
        self.hdr(r.header)
        for lease in r.leases:
            self._f("ID", lease.ID)

    def _members(self, members: list[rpc_pb2.Member]) -> None:
        for m in members:
            self._f("ID", m.ID)
            self._f("Name", go_quote(m.name))
            for u in m.peerURLs:
                self._f("PeerURL", go_quote(u))
            for u in m.clientURLs:
                self._f("ClientURL", go_quote(u))
            self._f("IsLearner", m.isLearner)
            self.out.line()

    def member_list(self, r: rpc_pb2.MemberListResponse) -> None:
        self.hdr(r.header)
        self._members(list(r.members))

    def member_add(self, r: rpc_pb2.MemberAddResponse) -> None:
        self.hdr(r.header)
        self._f("ID", r.member.ID)
        self._f("Name", go_quote(r.member.name))
        for u in r.member.peerURLs:
            self._f("PeerURL", u)
        for u in r.member.clientURLs:
            self._f("ClientURL", u)
        self.out.line()

    def member_remove(self, member_id: int, r: rpc_pb2.MemberRemoveResponse) -> None:
        self.hdr(r.header)

    def member_promote(self, member_id: int, r: rpc_pb2.MemberPromoteResponse) -> None:
        self.hdr(r.header)

    def endpoint_health(self, results: list[EndpointHealth]) -> None:
        for h in results:
            self._f("Endpoint", go_quote(h.endpoint))
            self._f("Health", h.health)
            self._f("Took", h.took)
            self._f("Error", h.error)
            self.out.line()

    def endpoint_status(self, statuses: list[EndpointStatus]) -> None:
        for s in statuses:
            r = s.resp
            self.hdr(r.header)
            self._f("Version", go_quote(r.version))
            self._f("DBSize", r.dbSize)
            self._f("Leader", r.leader)
            self._f("IsLearner", r.isLearner)
            self._f("RaftIndex", r.raftIndex)
            self._f("RaftTerm", r.raftTerm)
            self._f("RaftAppliedIndex", r.raftAppliedIndex)
            self._f("Errors", go_string_slice(list(r.errors)))
            self._f("Endpoint", go_quote(s.endpoint))
            self.out.line()

    def endpoint_hashkv(self, hashes: list[EndpointHashKV]) -> None:
        for h in hashes:
            self.hdr(h.resp.header)
            self._f("Endpoint", go_quote(h.endpoint))
            self._f("Hash", h.resp.hash)
            self.out.line()

    def alarm(self, r: rpc_pb2.AlarmResponse) -> None:
        self.hdr(r.header)
        for a in r.alarms:
            self._f("MemberID", a.memberID)
            self._f("AlarmType", rpc_pb2.AlarmType.Name(a.alarm))

    def db_status(self, ds: DbStatus) -> None:
        self._f("Hash", ds.hash)
        self._f("Revision", ds.revision)
        self._f("Keys", ds.total_key)
        self._f("Size", ds.total_size)
