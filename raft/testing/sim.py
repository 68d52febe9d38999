"""The deterministic Raft simulator: N RawNodes, a FakeNetwork, faults, checkers, one seed.

Theory of operation
-------------------
`run_seed(seed, config)` builds everything from ONE `random.Random(seed)`: the fault mix,
the per-node Raft configs (each node's own rng is drawn from it), the network's fate of
every message, the workload and the crashes. Nothing reads a clock or the OS, so a seed
replays exactly; `SimResult.trace_hash` digests every event to prove it.

A *step* is one round of the world, in a fixed order: inject at most a few faults and
client requests; tick each running node (each with its own probability, so clocks drift);
deliver the messages due now; let every running node handle one Ready, strictly in the
order of the Ready contract (raft/ready.py): persist the snapshot, persist hard state and
entries, send messages, apply committed entries, advance. A node scheduled to crash dies at
a chosen point inside that sequence and loses whatever was not persisted yet. Every
observation goes to a `SafetyChecker` as it happens, so a violation stops the run at the
step that caused it.

Two phases per seed:
1. *safety*: `steps` steps of proposals, ReadIndex reads, membership changes (add learner,
   promote, remove, re-add), leader transfers, crashes and restarts, partitions and a lossy,
   duplicating, reordering network;
2. *liveness*: faults stop, the network heals, members come back (removed ones stay down,
   as a removed etcd member stops itself); within `liveness_ticks` a leader must commit a
   fresh proposal that every member then applies, all at the same applied index.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

from raft.errors import ConfChangeError, RaftError, StepPeerNotFoundError
from raft.raw_node import RawNode
from raft.ready import sends_before_persist
from raft.storage import MemoryStorage
from raft.testing import workload
from raft.testing.checkers import LogView, ReadRecord, SafetyChecker, SimViolation
from raft.testing.network import Envelope, FakeClock, FakeNetwork, NetworkFaults
from raft.testing.sim_node import (
    ROLE_OF_STATE,
    CrashPoint,
    KvStateMachine,
    SimNode,
    entry_record,
)
from raft.testing.workload import FAULT_MIXES, MUTATIONS, FaultMix
from raft.types import (
    ConfChange,
    Config,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    Snapshot,
    SnapshotMetadata,
    SoftState,
    StateType,
)

LIVE_KEY = "live"


@dataclass(frozen=True, slots=True)
class SimConfig:
    nodes: int = 3
    steps: int = 1200
    liveness_ticks: int = 300
    mix: str | None = None  # None: drawn from the seed
    snapshot_every: int = 12  # applied entries between snapshots of the state machine
    snapshot_keep: int = 3  # entries kept in the log behind a snapshot
    spares: int = 1  # extra node ids that membership changes may add
    max_inflight_msgs: int | None = None  # None: drawn from the seed among 1, 4, 256
    # A deliberate fault in the simulated node or disk (see MUTATIONS), so that tests can
    # show the checkers catch it: a checker that never fails proves nothing.
    mutation: str | None = None


@dataclass(frozen=True, slots=True)
class SimResult:
    seed: int
    nodes: int
    mix: str
    ok: bool
    violation: str | None
    steps: int
    trace_hash: str
    stats: dict[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        status = "ok" if self.ok else f"VIOLATION {self.violation}"
        return f"SEED={self.seed} nodes={self.nodes} mix={self.mix} steps={self.steps} {status}"


class Simulation:
    """One seeded run. Use `run_seed`; the attributes are public for tests and debugging."""

    def __init__(self, seed: int, config: SimConfig) -> None:
        self.seed = seed
        self.config = config
        self.rng = random.Random(seed)
        mix_name = config.mix or self.rng.choice(sorted(FAULT_MIXES))
        self.mix = FAULT_MIXES[mix_name]
        self.clock = FakeClock()
        self.network: FakeNetwork[Message] = FakeNetwork(self.rng, self.mix.network)
        self.network.on_discard = self._on_discard
        self.checker = SafetyChecker()
        self.pre_vote = self.rng.random() < 0.7
        self.check_quorum = self.rng.random() < 0.7
        self.max_inflight = self.rng.choice((1, 4, 256))
        if config.max_inflight_msgs is not None:
            self.max_inflight = config.max_inflight_msgs
        self.max_msg_bytes = self.rng.choice((64, 1024 * 1024))
        self._trace = hashlib.blake2b(digest_size=16)
        self.stats: dict[str, int] = {}
        self._next_id = 0
        self._snap_streams: dict[int, tuple[int, int]] = {}  # envelope seq -> (leader, incarnation)
        self.max_commit = 1
        voters = tuple(range(1, config.nodes + 1))
        self.nodes: dict[int, SimNode] = {}
        if config.mutation is not None and config.mutation not in MUTATIONS:
            raise ValueError(f"unknown mutation {config.mutation!r}")
        self.mutation = config.mutation
        boot = Snapshot(SnapshotMetadata(1, 1, ConfState(voters=voters)), b"")
        for node_id in range(1, config.nodes + config.spares + 1):
            disk = MemoryStorage()
            if node_id in voters:
                disk.apply_snapshot(boot)
                disk.set_hard_state(HardState(term=1, commit=1))
            node = self.nodes[node_id] = SimNode(node_id, disk)
            self.start(node)

    # ------------------------------------------------------------------- plumbing

    def count(self, name: str, n: int = 1) -> None:
        self.stats[name] = self.stats.get(name, 0) + n

    def event(self, *parts: object) -> None:
        self._trace.update(repr(parts).encode())

    @property
    def trace_hash(self) -> str:
        return self._trace.hexdigest()

    def fresh_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def alive(self) -> list[SimNode]:
        return [n for n in self.nodes.values() if n.raw is not None]

    def leader(self) -> SimNode | None:
        """The running leader of the highest term, if any."""
        leaders = [n for n in self.alive() if n.is_leader]
        return max(leaders, key=lambda n: n.term) if leaders else None

    # ------------------------------------------------------------ crash / restart

    def start(self, node: SimNode) -> None:
        """(Re)start a node from its disk, rebuilding the state machine from the snapshot."""
        snap = node.disk.snapshot()
        meta = snap.metadata
        hard = node.disk.hard_state()
        self.checker.on_restart(node.id, persisted_commit=hard.commit, snap_index=meta.index)
        node.incarnation += 1
        node.sm = KvStateMachine.from_snapshot(snap.data, applied=meta.index,
                                               conf_state=meta.conf_state)
        cfg = Config(
            id=node.id,
            rng=random.Random(self.rng.getrandbits(64)),
            election_ticks=10,
            heartbeat_ticks=1,
            pre_vote=self.pre_vote,
            check_quorum=self.check_quorum,
            max_size_per_msg_bytes=self.max_msg_bytes,
            max_inflight_msgs=self.max_inflight,
            applied=meta.index,
            step_down_on_removal=True,
        )
        node.raw = RawNode(cfg, node.disk)
        node.soft = SoftState(0, StateType.FOLLOWER)
        node.term, node.commit = hard.term, hard.commit
        node.crash_point = None
        self.checker.on_soft_state(node.id, incarnation=node.incarnation, term=hard.term,
                                   commit=hard.commit, role=ROLE_OF_STATE[StateType.FOLLOWER],
                                   is_learner=node.is_learner)
        if meta.index:
            self.checker.on_install_snapshot(node.id, index=meta.index,
                                             state_digest=node.sm.digest())
        self.event("start", node.id, node.incarnation)

    def crash(self, node: SimNode) -> None:
        disk = node.disk
        if self.mutation == "forget-vote":
            hs = disk.hard_state()
            disk.set_hard_state(HardState(term=hs.term, vote=0, commit=hs.commit))
        elif self.mutation == "lose-tail" and disk.last_index() > disk.hard_state().commit:
            # Only entries this node does not know to be committed: what an unsynced write
            # cache would lose, and exactly what a leader may have counted towards a quorum.
            hs = disk.hard_state()
            kept = disk.entries(disk.first_index(), hs.commit + 1, 1 << 62)
            snap = disk.snapshot()
            node.disk = MemoryStorage()
            if not snap.is_empty:
                node.disk.apply_snapshot(snap)
            node.disk.append(kept)
            node.disk.set_hard_state(hs)
        node.raw = None
        node.reads.clear()
        node.crash_point = None
        self.network.drop_to(node.id)
        self.count("crashes")
        self.event("crash", node.id)

    # ---------------------------------------------------------------- messaging

    def _send(self, node: SimNode, m: Message) -> None:
        self.event("send", m.type.value, m.from_, m.to, m.term, m.index, m.commit, m.reject,
                    len(m.entries))
        envs = self.network.send(node.id, m.to, m, now=self.clock.now)
        if m.type is MessageType.SNAP:
            self.count("snapshots_sent")
            for env in envs:
                self._snap_streams[env.seq] = (node.id, node.incarnation)
            if not envs and node.raw is not None:
                node.raw.report_snapshot(m.to, False)
        elif not envs and m.type is MessageType.APP and self.network.is_blocked(node.id, m.to):
            if node.raw is not None:
                node.raw.report_unreachable(m.to)

    def _send_checked(self, node: SimNode, m: Message) -> None:
        if m.type is MessageType.VOTE_RESP and not m.reject:
            self.checker.on_vote_granted_sent(node.id, to=m.to, term=m.term, pre_vote=False)
            if node.is_learner:
                # Allowed (etcd-io/raft PR 10998); the checker makes sure it never counts.
                self.count("learner_votes_granted")
        self._send(node, m)

    def _report_snapshot(self, env: Envelope[Message], ok: bool) -> None:
        origin = self._snap_streams.pop(env.seq, None)
        if origin is None:
            return
        leader = self.nodes[origin[0]]
        if leader.raw is not None and leader.incarnation == origin[1]:
            leader.raw.report_snapshot(env.to, ok)

    def _on_discard(self, env: Envelope[Message]) -> None:
        if env.msg.type is MessageType.SNAP:
            self._report_snapshot(env, False)

    def _deliver(self, env: Envelope[Message]) -> None:
        node = self.nodes[env.to]
        m = env.msg
        if node.raw is None:
            self._on_discard(env)
            return
        self.event("recv", m.type.value, m.from_, m.to, m.term, m.index)
        if m.type is MessageType.VOTE_RESP and not m.reject:
            self.checker.on_vote_granted_received(node.id, frm=m.from_, term=m.term)
        try:
            node.raw.step(m)
        except StepPeerNotFoundError:
            self.count("step_unknown_peer")
        if m.type is MessageType.SNAP:
            self._report_snapshot(env, True)

    # ------------------------------------------------------------ the Ready loop

    def _handle_ready(self, node: SimNode) -> None:
        raw = node.raw
        if raw is None or not raw.has_ready():
            return
        rd = raw.ready()
        disk = node.disk
        crash = node.crash_point
        self.event("ready", node.id, rd.hard_state, len(rd.entries), len(rd.messages),
                    [e.index for e in rd.committed_entries[-1:]], rd.snapshot is not None)
        # A leader sends first, in parallel with its own fsync (Raft thesis 10.2.1), as
        # api/server/node.py does; a crash scheduled after the snapshot step then dies with
        # the messages out and nothing persisted.
        early = self.mutation == "send-before-persist" or sends_before_persist(
            rd, node.soft, disk.hard_state())
        if early:
            for m in rd.messages:
                self._send_checked(node, m)
        # 1. The snapshot.
        if rd.snapshot is not None:
            disk.apply_snapshot(rd.snapshot)
        if crash is CrashPoint.AFTER_SNAPSHOT:
            if early and rd.entries and rd.messages:
                self.count("crashes_after_early_send")  # the window 10.2.1 opens
            return self.crash(node)
        # 2. Entries, then hard state.
        if rd.entries:
            first = rd.entries[0].index
            prev_term: int | None
            try:
                prev_term = disk.term(first - 1)
            except RaftError:
                prev_term = None
            disk.append(rd.entries)
            self.checker.on_persist_entries(node.id, [entry_record(e) for e in rd.entries],
                                            prev_term=prev_term)
        if rd.hard_state is not None:
            hs = rd.hard_state
            disk.set_hard_state(hs)
            self.checker.on_persist_hard_state(node.id, term=hs.term, vote=hs.vote,
                                               commit=hs.commit)
            # Every entry the new commit index covers is committed: tell the checker.
            for index in range(max(node.commit, disk.first_index() - 1) + 1, hs.commit + 1):
                self.checker.on_commit(node.id, index=index, term=disk.term(index))
            node.term, node.commit = hs.term, hs.commit
            self.max_commit = max(self.max_commit, hs.commit)
        if crash is CrashPoint.AFTER_PERSIST:
            return self.crash(node)
        self._observe(node, rd.soft_state)
        # 3. Messages, only now that what they promise is durable.
        if not early:
            for m in rd.messages:
                self._send_checked(node, m)
        if crash is CrashPoint.AFTER_SEND:
            return self.crash(node)
        # 4. Apply.
        if rd.snapshot is not None:
            meta = rd.snapshot.metadata
            node.sm = KvStateMachine.from_snapshot(rd.snapshot.data, applied=meta.index,
                                                   conf_state=meta.conf_state)
            self.checker.on_install_snapshot(node.id, index=meta.index,
                                             state_digest=node.sm.digest())
            self.count("snapshots_installed")
        for e in rd.committed_entries:
            self._apply(node, raw, e.index, e.type, e.data, e.term)
        for rs in rd.read_states:
            pending = node.reads.get(rs.request_ctx)
            if pending is not None and pending.read_index is None:
                pending.read_index = rs.index
        if crash is CrashPoint.AFTER_APPLY:
            return self.crash(node)
        # 5. Advance, then maybe cut a snapshot of the applied state and compact the log.
        raw.advance(rd)
        self._maybe_snapshot(node)
        self.serve_reads(node)

    def _observe(self, node: SimNode, soft: SoftState | None) -> None:
        was_leader = node.soft.raft_state is StateType.LEADER
        if soft is not None:
            node.soft = soft
        role = ROLE_OF_STATE[node.soft.raft_state]
        self.checker.on_soft_state(node.id, incarnation=node.incarnation, term=node.term,
                                   commit=node.commit, role=role, is_learner=node.is_learner)
        if node.is_leader and not was_leader:
            self.count("leaders_elected")
            if node.raw is None:  # pragma: no cover - observed only while running
                return
            voters = frozenset(node.raw.status().conf_state.voters)
            self.checker.on_became_leader(node.id, term=node.term, voters=voters,
                                          log=self._log_view(node))

    def _log_view(self, node: SimNode) -> LogView:
        disk = node.disk
        first, last = disk.first_index(), disk.last_index()
        terms = tuple(e.term for e in disk.entries(first, last + 1, 1 << 62)) if last >= first else ()
        return LogView(first - 1, disk.term(first - 1), terms)

    def _apply(self, node: SimNode, raw: RawNode, index: int, kind: EntryType, data: bytes,
               term: int) -> None:
        entry = Entry(term, index, kind, data)
        put = None
        if kind is EntryType.CONF_CHANGE:
            cc = ConfChange.unmarshal(data)
            try:
                node.sm.conf_state = raw.apply_conf_change(cc)
                self.count("conf_changes_applied")
            except ConfChangeError:
                self.count("conf_changes_refused")
            node.sm.applied = index
        else:
            put = node.sm.apply_put(index, data)
        self.checker.on_apply(node.id, entry_record(entry), state_digest=node.sm.digest(),
                              put=put)
        self.count("applied")

    def _maybe_snapshot(self, node: SimNode) -> None:
        disk = node.disk
        applied = node.sm.applied
        meta = disk.snapshot().metadata
        # Also cut one as soon as the membership changed: a node refuses a snapshot whose
        # ConfState does not name it, so a leader whose latest snapshot predates a member's
        # addition could never catch that member up once the log behind it is compacted.
        if applied == meta.index or (applied - meta.index < self.config.snapshot_every
                                     and node.sm.conf_state == meta.conf_state):
            return
        disk.create_snapshot(applied, node.sm.conf_state, node.sm.encode())
        compact_to = applied - self.config.snapshot_keep
        if compact_to >= disk.first_index():
            disk.compact(compact_to)
        self.count("snapshots_cut")

    def serve_reads(self, node: SimNode) -> None:
        done = [ctx for ctx, r in node.reads.items()
                if r.read_index is not None and node.sm.applied >= r.read_index]
        for ctx in done:
            r = node.reads.pop(ctx)
            read_index = r.read_index if r.read_index is not None else 0
            self.checker.on_read(ReadRecord(
                node=node.id, key=r.key, invoked_step=r.invoked_step,
                completed_step=self.clock.now, commit_at_invoke=r.commit_at_invoke,
                read_index=read_index, applied_index=node.sm.applied,
                value=node.sm.kv.get(r.key)))
            self.count("reads_served")

    # ------------------------------------------------------------------- phases

    def step(self, *, faults: bool, tick_rate: float) -> None:
        now = self.clock.advance()
        if faults:
            workload.inject(self)
        for node in self.nodes.values():
            if node.raw is not None and self.rng.random() < tick_rate:
                node.raw.tick()
        for env in self.network.deliver_due(now):
            self._deliver(env)
        for node in self.nodes.values():
            self._handle_ready(node)

    def run_safety(self) -> None:
        for _ in range(self.config.steps):
            self.step(faults=True, tick_rate=self.mix.tick_rate)

    def _members(self) -> set[int]:
        """Members as the most advanced running node sees them."""
        alive = self.alive() or list(self.nodes.values())
        best = max(alive, key=lambda n: (n.sm.applied, -n.id))
        cs = best.sm.conf_state
        return set(cs.voters) | set(cs.learners)

    def run_liveness(self) -> None:
        self.network.heal()
        self.network.faults = NetworkFaults(delay_max=1)
        for node in self.nodes.values():
            node.crash_point = None
        proposed_at: tuple[int, int] | None = None  # (leader id, term) of the last marker
        for tick in range(self.config.liveness_ticks):
            members = self._members()
            for node in self.nodes.values():
                if node.id in members and node.raw is None:
                    node.stopped = False
                    self.start(node)
                elif node.id not in members and node.raw is not None:
                    node.stopped = True
                    self.crash(node)
            self.step(faults=False, tick_rate=1.0)
            leader = self.leader()
            # A client retries its write on a new leader, and every 50 ticks (it may have
            # been dropped, e.g. during a leadership transfer).
            if leader is not None and (proposed_at != (leader.id, leader.term) or tick % 50 == 49):
                proposed_at = (leader.id, leader.term)
                workload.propose(self, leader, LIVE_KEY)
            if self._converged(members):
                self.count("liveness_ticks", tick + 1)
                return
        states = {n.id: (n.raw is not None, n.soft.raft_state.value, n.term, n.commit,
                         n.sm.applied, n.sm.kv.get(LIVE_KEY)) for n in self.nodes.values()}
        leader = self.leader()
        progress = ""
        if leader is not None and leader.raw is not None:
            progress = "; leader progress " + ", ".join(
                f"{i}:{p.state.value}/match={p.match}/next={p.next}/inflight={p.inflight}"
                f"{'/paused' if p.paused else ''}"
                for i, p in sorted(leader.raw.status().progress.items()))
        raise SimViolation("liveness", f"no convergence after {self.config.liveness_ticks} "
                                       f"ticks: members {sorted(members)}, nodes {states}"
                                       f"{progress}")

    def _converged(self, members: set[int]) -> bool:
        nodes = [self.nodes[m] for m in members]
        if any(n.raw is None for n in nodes):
            return False
        values = {(n.sm.applied, n.sm.kv.get(LIVE_KEY)) for n in nodes}
        if len(values) != 1:
            return False
        (_, value), = values
        return value is not None

    def run(self) -> None:
        self.run_safety()
        self.run_liveness()


def run_seed(seed: int, config: SimConfig | None = None) -> SimResult:
    """Run one seed through both phases; never raises for a violation (it is in the result)."""
    config = config or SimConfig()
    sim = Simulation(seed, config)
    violation: str | None = None
    try:
        sim.run()
    except SimViolation as exc:
        violation = str(exc)
    except Exception as exc:  # a crash of the core is a finding too, with where it happened
        # The innermost frame that is not the invariant() helper, without reading sources.
        frames = []
        tb = exc.__traceback__
        while tb is not None:
            frames.append((tb.tb_frame.f_code, tb.tb_lineno))
            tb = tb.tb_next
        frames = [f for f in frames if f[0].co_name != "invariant"] or frames
        where = ""
        if frames:
            code, line = frames[-1]
            where = f" (at {code.co_filename.rsplit('/', 1)[-1]}:{line} {code.co_name})"
        violation = f"exception {type(exc).__name__}: {exc}{where}"
    return SimResult(seed=seed, nodes=config.nodes, mix=sim.mix.name, ok=violation is None,
                     violation=violation, steps=sim.clock.now, trace_hash=sim.trace_hash,
                     stats=dict(sim.stats))


__all__ = ["FAULT_MIXES", "MUTATIONS", "FaultMix", "SimConfig", "SimResult", "Simulation",
           "run_seed"]
