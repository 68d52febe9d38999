"""InteractionEnv: N RawNodes with in-memory storage, driven by datadriven commands.

This is the engine of the golden scenario files in tests/scenarios/raft/ (after
etcd-io/raft's rafttest.InteractionEnv). Each node follows the Ready contract
(raft/ready.py) literally: install the snapshot, persist hard state and entries, queue the
messages, apply committed entries (conf changes through `apply_conf_change`), advance.
Messages wait in one in-flight list until a `deliver-msgs` or `stabilize` command hands them
to their recipient, so a scenario controls every interleaving.

The state machine of a node is the list of applied normal-entry payloads; a node's storage
serves a snapshot of its latest applied state (index, term, conf state, payloads joined by
commas), as a real server snapshots its applied state machine.

Commands (arguments in key=value form, ids are node ids, 1-based):
  add-nodes N [voters=(..) learners=(..) index=I] [prevote=true] [checkquorum=true]
            [max-size-per-msg=B] [max-inflight=N] [max-uncommitted=B] [read-only=lease]
            [step-down-on-removal=true] [disable-forwarding=true]
            [election-ticks=10] [heartbeat-ticks=1]
  campaign ID | propose ID DATA | propose-conf-change ID (input: v4, l4 or r2)
  tick-heartbeat ID | tick-election ID | tick ID N
  deliver-msgs [ID..] [drop=(ID..)] | process-ready [ID..] | stabilize [ID..]
  raft-log ID | raft-state | status ID | applied ID
  read-index ID CTX | transfer-leadership from=A to=B
  compact ID INDEX | snapshot-unavailable ID true|false
  report-unreachable ID PEER | report-snapshot ID PEER [failed]
  isolate ID | heal | restart ID
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from raft.describe import (
    describe_conf_state,
    describe_entry,
    describe_message,
    describe_ready,
)
from raft.errors import RaftError, SnapshotTemporarilyUnavailableError
from raft.raw_node import RawNode
from raft.ready import Ready
from raft.storage import MemoryStorage
from raft.types import (
    ConfChange,
    ConfChangeType,
    Config,
    ConfState,
    EntryType,
    HardState,
    Message,
    ReadOnlyOption,
    Snapshot,
    SnapshotMetadata,
    StateType,
)

Args = Sequence[tuple[str, Sequence[str]]]


class EnvStorage(MemoryStorage):
    """MemoryStorage whose `snapshot()` is the node's latest applied state."""

    __slots__ = ("applied_snapshot", "snapshot_unavailable")

    def __init__(self) -> None:
        super().__init__()
        self.applied_snapshot: Snapshot | None = None
        self.snapshot_unavailable = False

    def snapshot(self) -> Snapshot:
        if self.snapshot_unavailable:
            raise SnapshotTemporarilyUnavailableError("snapshot is being prepared")
        if self.applied_snapshot is not None:
            return self.applied_snapshot
        return super().snapshot()


@dataclass
class EnvNode:
    id: int
    storage: EnvStorage
    config: Config
    node: RawNode
    conf_state: ConfState
    values: list[bytes] = field(default_factory=list)
    applied_index: int = 0
    applied_term: int = 0


class InteractionEnv:
    def __init__(self) -> None:
        self.nodes: list[EnvNode] = []
        self.messages: list[Message] = []
        self.isolated: set[int] = set()

    # --------------------------------------------------------------- dispatch

    def handle(self, command: str, args: Args, input: str = "") -> str:
        """Run one command; returns its output text (errors are part of the output)."""
        kv = {k: list(v) for k, v in args if v}
        pos = [k for k, v in args if not v]
        fn = getattr(self, "_cmd_" + command.replace("-", "_"), None)
        if fn is None:
            raise ValueError(f"unknown command {command}")
        try:
            out: str = fn(pos, kv, input)
        except RaftError as e:
            out = f"error: {type(e).__name__}: {e}"
        return out

    def _node(self, id: int | str) -> EnvNode:
        return self.nodes[int(id) - 1]

    # ------------------------------------------------------------------ setup

    def _cmd_add_nodes(self, pos: list[str], kv: dict[str, list[str]], _: str) -> str:
        n = int(pos[0])
        voters = tuple(int(v) for v in kv.get("voters", []))
        learners = tuple(int(v) for v in kv.get("learners", []))
        index = int(kv.get("index", ["1"])[0])

        def flag(name: str) -> bool:
            return kv.get(name, ["false"])[0] == "true"

        def num(name: str, default: int) -> int:
            return int(kv.get(name, [str(default)])[0])

        lines = []
        for _i in range(n):
            id = len(self.nodes) + 1
            storage = EnvStorage()
            cs = ConfState(voters, learners)
            if voters:
                # Bootstrap as etcd does: the initial config is committed at term 1, so the
                # node starts in term 1 and its first election is for term 2.
                storage.apply_snapshot(Snapshot(SnapshotMetadata(index, 1, cs)))
                storage.set_hard_state(HardState(term=1, commit=index))
            cfg = Config(
                id=id,
                rng=random.Random(id),
                election_ticks=num("election-ticks", 10),
                heartbeat_ticks=num("heartbeat-ticks", 1),
                pre_vote=flag("prevote"),
                check_quorum=flag("checkquorum") or kv.get("read-only", [""])[0] == "lease",
                max_size_per_msg_bytes=num("max-size-per-msg", 1024 * 1024),
                max_inflight_msgs=num("max-inflight", 256),
                max_uncommitted_entries_size=num("max-uncommitted", 0),
                read_only_option=(
                    ReadOnlyOption.LEASE_BASED
                    if kv.get("read-only", [""])[0] == "lease"
                    else ReadOnlyOption.SAFE
                ),
                step_down_on_removal=flag("step-down-on-removal"),
                disable_proposal_forwarding=flag("disable-forwarding"),
            )
            env_node = EnvNode(id, storage, cfg, RawNode(cfg, storage), cs)
            if voters:
                env_node.applied_index, env_node.applied_term = index, 1
            self.nodes.append(env_node)
            lines.append(self._describe_start(env_node))
        return "\n".join(lines)

    def _describe_start(self, n: EnvNode) -> str:
        st = n.node.status()
        return (
            f"{n.id}: new node at term {st.hard_state.term}, commit {st.hard_state.commit}, "
            f"applied {st.applied}, last index {n.storage.last_index()}, "
            f"{describe_conf_state(st.conf_state)}"
        )

    def _cmd_restart(self, pos: list[str], kv: dict[str, list[str]], _: str) -> str:
        """Rebuild a node from what it persisted (hard state, log, snapshot) and its applied
        state machine; anything not yet handed to storage is lost, as in a crash."""
        n = self._node(pos[0])
        cfg = dataclasses.replace(n.config, applied=n.applied_index)
        n.config = cfg
        n.node = RawNode(cfg, n.storage)
        return self._describe_start(n)

    # ---------------------------------------------------------------- inputs

    def _cmd_campaign(self, pos: list[str], kv: dict[str, list[str]], _: str) -> str:
        self._node(pos[0]).node.campaign()
        return ""

    def _cmd_propose(self, pos: list[str], kv: dict[str, list[str]], _: str) -> str:
        self._node(pos[0]).node.propose(pos[1].encode())
        return ""

    def _cmd_propose_conf_change(self, pos: list[str], kv: dict[str, list[str]], inp: str) -> str:
        kinds = {
            "v": ConfChangeType.ADD_NODE,
            "l": ConfChangeType.ADD_LEARNER_NODE,
            "r": ConfChangeType.REMOVE_NODE,
        }
        tokens = inp.split()
        if len(tokens) != 1:
            raise ValueError("propose-conf-change takes exactly one change (v4, l4, r2)")
        tok = tokens[0]
        self._node(pos[0]).node.propose_conf_change(ConfChange(kinds[tok[0]], int(tok[1:])))
        return ""

    def _cmd_tick_heartbeat(self, pos: list[str], kv: dict[str, list[str]], _: str) -> str:
        n = self._node(pos[0])
        for _i in range(n.config.heartbeat_ticks):
            n.node.tick()
        return ""

    def _cmd_tick_election(self, pos: list[str], kv: dict[str, list[str]], _: str) -> str:
        """Tick until the node's election timer fires once: its randomized timeout for a
        follower or candidate, the election timeout (check quorum) for a leader."""
        n = self._node(pos[0])
        r = n.node._raft
        if r.state is StateType.LEADER:
            ticks = r.election_timeout - r.election_elapsed
        else:
            ticks = r.randomized_election_timeout - r.election_elapsed
        for _i in range(max(ticks, 1)):
            n.node.tick()
        return ""

    def _cmd_tick(self, pos: list[str], kv: dict[str, list[str]], _: str) -> str:
        n = self._node(pos[0])
        for _i in range(int(pos[1])):
            n.node.tick()
        return ""

    def _cmd_read_index(self, pos: list[str], kv: dict[str, list[str]], _: str) -> str:
        self._node(pos[0]).node.read_index(pos[1].encode())
        return ""

    def _cmd_transfer_leadership(self, pos: list[str], kv: dict[str, list[str]], _: str) -> str:
        self._node(kv["from"][0]).node.transfer_leader(int(kv["to"][0]))
        return ""

    def _cmd_report_unreachable(self, pos: list[str], kv: dict[str, list[str]], _: str) -> str:
        self._node(pos[0]).node.report_unreachable(int(pos[1]))
        return ""

    def _cmd_report_snapshot(self, pos: list[str], kv: dict[str, list[str]], _: str) -> str:
        self._node(pos[0]).node.report_snapshot(int(pos[1]), "failed" not in pos)
        return ""

    def _cmd_compact(self, pos: list[str], kv: dict[str, list[str]], _: str) -> str:
        n = self._node(pos[0])
        n.storage.compact(int(pos[1]))
        return self._cmd_raft_log(pos[:1], kv, "")

    def _cmd_snapshot_unavailable(self, pos: list[str], kv: dict[str, list[str]], _: str) -> str:
        self._node(pos[0]).storage.snapshot_unavailable = pos[1] == "true"
        return ""

    def _cmd_isolate(self, pos: list[str], kv: dict[str, list[str]], _: str) -> str:
        self.isolated.add(int(pos[0]))
        return ""

    def _cmd_heal(self, pos: list[str], kv: dict[str, list[str]], _: str) -> str:
        self.isolated.clear()
        return ""

    # ------------------------------------------------------------ processing

    def _ids(self, pos: list[str]) -> list[int]:
        return [int(p) for p in pos] if pos else [n.id for n in self.nodes]

    def _cmd_process_ready(self, pos: list[str], kv: dict[str, list[str]], _: str) -> str:
        ids = self._ids(pos)
        if len(ids) == 1:
            return self.process_ready(ids[0])
        out = []
        for id in ids:
            out.append(f"> {id} handling Ready")
            out.append(_indent(self.process_ready(id)))
        return "\n".join(out)

    def process_ready(self, id: int) -> str:
        n = self._node(id)
        rd = n.node.ready()
        lines = [describe_ready(rd)]
        self._persist(n, rd)
        self.messages.extend(rd.messages)
        lines.extend(self._apply(n, rd))
        n.node.advance(rd)
        return "\n".join(lines)

    def _persist(self, n: EnvNode, rd: Ready) -> None:
        if rd.snapshot is not None:
            n.storage.apply_snapshot(rd.snapshot)
            meta = rd.snapshot.metadata
            n.values = [v for v in rd.snapshot.data.split(b",") if v]
            n.applied_index, n.applied_term = meta.index, meta.term
            n.conf_state = meta.conf_state
            n.storage.applied_snapshot = rd.snapshot
        if rd.hard_state is not None:
            n.storage.set_hard_state(rd.hard_state)
        n.storage.append(rd.entries)

    def _apply(self, n: EnvNode, rd: Ready) -> list[str]:
        lines = []
        for e in rd.committed_entries:
            if e.type is EntryType.CONF_CHANGE:
                n.conf_state = n.node.apply_conf_change(ConfChange.unmarshal(e.data))
                lines.append(
                    f"INFO {n.id} switched to configuration {describe_conf_state(n.conf_state)}"
                )
            elif e.data:
                n.values.append(e.data)
            n.applied_index, n.applied_term = e.index, e.term
        if rd.committed_entries:
            n.storage.applied_snapshot = Snapshot(
                SnapshotMetadata(n.applied_index, n.applied_term, n.conf_state),
                b",".join(n.values),
            )
        return lines

    def _cmd_deliver_msgs(self, pos: list[str], kv: dict[str, list[str]], _: str) -> str:
        drop = {int(d) for d in kv.get("drop", [])}
        ids = self._ids(pos) if pos else sorted({m.to for m in self.messages} | drop)
        out = []
        for id in ids:
            out.extend(self.deliver_msgs(id, drop=id in drop))
        return "\n".join(out)

    def deliver_msgs(self, to: int, *, drop: bool = False) -> list[str]:
        mine = [m for m in self.messages if m.to == to]
        self.messages = [m for m in self.messages if m.to != to]
        out = []
        for m in mine:
            if drop or m.to in self.isolated or m.from_ in self.isolated:
                out.append(f"dropped: {describe_message(m)}")
                continue
            out.append(describe_message(m))
            try:
                self._node(to).node.step(m)
            except RaftError as e:
                out.append(f"error: {type(e).__name__}: {e}")
        return out

    def _cmd_stabilize(self, pos: list[str], kv: dict[str, list[str]], _: str) -> str:
        ids = self._ids(pos)
        out: list[str] = []
        for _round in range(1000):
            done = True
            for id in ids:
                if self._node(id).node.has_ready():
                    done = False
                    out.append(f"> {id} handling Ready")
                    out.append(_indent(self.process_ready(id)))
            for id in ids:
                if any(m.to == id for m in self.messages):
                    done = False
                    out.append(f"> {id} receiving messages")
                    out.append(_indent("\n".join(self.deliver_msgs(id))))
            if done:
                return "\n".join(out)
        raise RuntimeError("stabilize did not converge in 1000 rounds")

    # ------------------------------------------------------------ inspection

    def _cmd_raft_log(self, pos: list[str], kv: dict[str, list[str]], _: str) -> str:
        s = self._node(pos[0]).storage
        first, last = s.first_index(), s.last_index()
        if last < first:
            return f"log is empty: first index={first}, last index={last}"
        return "\n".join(describe_entry(e) for e in s.entries(first, last + 1, 1 << 62))

    def _cmd_raft_state(self, pos: list[str], kv: dict[str, list[str]], _: str) -> str:
        lines = []
        for n in self.nodes:
            st = n.node.status()
            cs = st.conf_state
            role = "Voter" if n.id in cs.voters else "Learner" if n.id in cs.learners else "NonMember"
            lines.append(
                f"{n.id}: {st.soft_state.raft_state.value} ({role}) "
                f"Term:{st.hard_state.term} Lead:{st.soft_state.lead}"
            )
        return "\n".join(lines)

    def _cmd_status(self, pos: list[str], kv: dict[str, list[str]], _: str) -> str:
        st = self._node(pos[0]).node.status()
        lines = []
        for id, pr in sorted(st.progress.items()):
            line = f"{id}: {pr.state.value} match={pr.match} next={pr.next}"
            if pr.is_learner:
                line += " learner"
            if pr.paused:
                line += " paused"
            if pr.pending_snapshot:
                line += f" pendingSnap={pr.pending_snapshot}"
            if pr.inflight:
                line += f" inflight={pr.inflight}"
            lines.append(line)
        if st.lead_transferee:
            lines.append(f"lead transferee: {st.lead_transferee}")
        return "\n".join(lines) if lines else f"{st.id} is not the leader"

    def _cmd_applied(self, pos: list[str], kv: dict[str, list[str]], _: str) -> str:
        n = self._node(pos[0])
        vals = " ".join(v.decode() for v in n.values)
        return f"applied index {n.applied_index}: [{vals}]"


def _indent(text: str) -> str:
    return "\n".join("  " + ln if ln else ln for ln in text.split("\n"))
