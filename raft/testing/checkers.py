"""Safety checkers for the Raft simulator, fed one observation at a time.

Theory of operation
-------------------
The simulator reports what it sees (a node's soft state, what it persisted, what it sent
and received, what it applied, what a client read) to one `SafetyChecker`. Each report is
checked at once against what was seen before, so a violation is raised at the step that
causes it, with a message naming the node, index and term. The checker never looks inside
a RawNode: it judges the protocol only by its observable effects, the way a Jepsen checker
judges a database, so a bug in the core cannot hide behind the same bug in the checker.

The properties (Raft paper figure 3, plus the crash and ReadIndex rules):

- *election safety*: at most one node is leader in a term;
- *vote counting*: a node that becomes leader of term T received granted MsgVoteResp for T
  from a majority of its voters (itself included); a vote from a non-voter (a learner)
  never helps. (Learners may answer votes, as in etcd-io/raft PR 10998, but they count
  only if the candidate's config says they are voters.) A learner never campaigns;
- *vote durability*: a node only grants a vote (MsgVoteResp, reject=false) after it
  persisted that vote in its HardState (or a later term, which rules out voting again in
  that term), and it never persists two votes in one term;
- *monotonicity*: within one incarnation, term and commit never decrease; across crashes
  the persisted term and commit never decrease;
- *log matching*: an (index, term) pair names one entry forever: every persisted copy has
  the same payload digest and the same previous term, which by induction makes every two
  logs that share an (index, term) identical up to it;
- *commit safety*: whenever a node's commit index covers an entry of its log, that (index,
  term) is committed; two nodes never commit different terms at one index;
- *leader completeness*: when a node becomes leader, its log holds every entry known to be
  committed (covered by some node's commit index) at its index with its term;
- *state machine safety*: every node applies the same entry at each index, applies
  indices in order without gaps (a snapshot jumps), and reaches the same state digest at
  each index, whether it got there by applying entries or by installing a snapshot;
- *durability of apply*: after a restart the persisted commit (or snapshot) covers every
  index the node applied before the crash, so re-applying reproduces the applied prefix;
- *ReadIndex linearizability*: a read invoked when index c was already committed somewhere
  gets read_index >= c, is served only once applied >= read_index, and returns exactly the
  value that the committed log gives for its key at the index it was served at.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field


class SimViolation(Exception):
    """A safety property failed; `kind` names the property, the message gives the evidence."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind


class Role(enum.Enum):
    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre-candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"


@dataclass(frozen=True, slots=True)
class EntryRecord:
    """An entry as the checker sees it: position and a digest of (type, data)."""

    index: int
    term: int
    digest: bytes


@dataclass(frozen=True, slots=True)
class LogView:
    """A node's log: snapshot boundary, then the terms of entries snap_index+1 .. last."""

    snap_index: int
    snap_term: int
    terms: tuple[int, ...]

    @property
    def last_index(self) -> int:
        return self.snap_index + len(self.terms)

    def term_at(self, index: int) -> int | None:
        if index == self.snap_index:
            return self.snap_term
        if self.snap_index < index <= self.last_index:
            return self.terms[index - self.snap_index - 1]
        return None


@dataclass(frozen=True, slots=True)
class ReadRecord:
    """One completed linearizable read (ReadIndex), with the times it spans."""

    node: int
    key: str
    invoked_step: int
    completed_step: int
    commit_at_invoke: int  # highest commit index of any node when the read was invoked
    read_index: int  # the index the ReadState carried
    applied_index: int  # the node's applied index when the value was read
    value: str | None


@dataclass(slots=True)
class _NodeTrack:
    incarnation: int = -1
    term: int = 0
    commit: int = 0
    role: Role = Role.FOLLOWER
    persisted_term: int = 0
    persisted_vote: int = 0
    persisted_commit: int = 0
    applied: int = 0
    applied_max_ever: int = 0
    granted_votes: dict[int, set[int]] = field(default_factory=dict)  # term -> voters seen


def _quorum(voters: frozenset[int]) -> int:
    return len(voters) // 2 + 1


class SafetyChecker:
    """Accumulates observations and raises SimViolation at the first broken property."""

    def __init__(self) -> None:
        self._nodes: dict[int, _NodeTrack] = {}
        self._leader_of_term: dict[int, int] = {}
        self._entries: dict[tuple[int, int], tuple[bytes, int | None]] = {}
        self._committed: dict[int, int] = {}  # index -> term of the committed entry
        self._applied: dict[int, EntryRecord] = {}  # the committed log as applied anywhere
        self._state_at: dict[int, bytes] = {}  # state-machine digest after applying index
        self._key_history: dict[str, list[tuple[int, str | None]]] = {}
        self.reads_checked = 0

    def _node(self, node: int) -> _NodeTrack:
        track = self._nodes.get(node)
        if track is None:
            track = self._nodes[node] = _NodeTrack()
        return track

    @property
    def max_committed(self) -> int:
        """Highest index known to be committed (applied by some node)."""
        return max(self._applied, default=0)

    # -- roles, terms, commit -----------------------------------------------------------

    def on_soft_state(
        self,
        node: int,
        *,
        incarnation: int,
        term: int,
        commit: int,
        role: Role,
        is_learner: bool,
    ) -> None:
        """Observe a node's volatile state (after every step it took)."""
        t = self._node(node)
        if t.incarnation != incarnation:
            t.incarnation = incarnation
            t.term = term
            t.commit = commit
            t.role = Role.FOLLOWER
            t.granted_votes = {}
        if term < t.term:
            raise SimViolation("term-monotonic", f"node {node} term went {t.term} -> {term}")
        if commit < t.commit:
            raise SimViolation("commit-monotonic", f"node {node} commit went {t.commit} -> {commit}")
        if is_learner and role is not Role.FOLLOWER:
            raise SimViolation("learner-campaign", f"learner {node} is {role.value} at term {term}")
        if role is Role.LEADER:
            other = self._leader_of_term.setdefault(term, node)
            if other != node:
                raise SimViolation(
                    "election-safety", f"nodes {other} and {node} are both leader of term {term}"
                )
        t.term, t.commit, t.role = term, commit, role

    def on_became_leader(self, node: int, *, term: int, voters: frozenset[int], log: LogView) -> None:
        """A node just turned leader: check its vote tally and that its log is complete."""
        t = self._node(node)
        if node not in voters:
            raise SimViolation("learner-campaign", f"node {node} leads term {term} as a non-voter")
        # A leader elected in a single-voter config needs no vote; otherwise count only the
        # granted responses of this term from nodes this leader's config calls voters.
        granted = (t.granted_votes.get(term, set()) | {node}) & voters
        if len(granted) < _quorum(voters):
            raise SimViolation(
                "vote-count",
                f"node {node} leads term {term} with votes {sorted(granted)} of voters {sorted(voters)}",
            )
        for index, committed_term in self._committed.items():
            if index <= log.snap_index:
                continue  # covered by the snapshot (its digest is checked on install)
            have = log.term_at(index)
            if have != committed_term:
                raise SimViolation(
                    "leader-completeness",
                    f"leader {node} of term {term} has term {have} at committed index {index} "
                    f"(committed term {committed_term}; its log ends at {log.last_index})",
                )

    def on_commit(self, node: int, *, index: int, term: int) -> None:
        """Node's durable commit index now covers the entry (index, term) of its log."""
        known = self._committed.setdefault(index, term)
        if known != term:
            raise SimViolation(
                "commit-safety",
                f"node {node} commits term {term} at index {index}, already committed: term {known}",
            )

    # -- messages -----------------------------------------------------------------------

    def on_vote_granted_sent(self, node: int, *, to: int, term: int, pre_vote: bool) -> None:
        """Node sent a granting vote response; a real vote must already be durable."""
        if pre_vote:
            return
        t = self._node(node)
        # A later durable term also makes the vote safe: the node can never vote in `term`
        # again (one Ready may carry a term-2 grant and the term-3 HardState that follows).
        if t.persisted_term < term or (t.persisted_term == term and t.persisted_vote != to):
            raise SimViolation(
                "vote-durability",
                f"node {node} granted its term-{term} vote to {to} but persisted "
                f"(term={t.persisted_term}, vote={t.persisted_vote})",
            )

    def on_vote_granted_received(self, node: int, *, frm: int, term: int) -> None:
        """Node (a candidate, maybe) stepped a granting MsgVoteResp of `term` from `frm`."""
        self._node(node).granted_votes.setdefault(term, set()).add(frm)

    # -- persistence --------------------------------------------------------------------

    def on_persist_hard_state(self, node: int, *, term: int, vote: int, commit: int) -> None:
        t = self._node(node)
        if term < t.persisted_term:
            raise SimViolation(
                "term-monotonic", f"node {node} persisted term {term} after {t.persisted_term}"
            )
        if commit < t.persisted_commit:
            raise SimViolation(
                "commit-monotonic",
                f"node {node} persisted commit {commit} after {t.persisted_commit}",
            )
        if term == t.persisted_term and t.persisted_vote not in (0, vote):
            raise SimViolation(
                "double-vote",
                f"node {node} persisted vote {vote} in term {term} after voting {t.persisted_vote}",
            )
        t.persisted_term, t.persisted_vote, t.persisted_commit = term, vote, commit

    def on_persist_entries(
        self, node: int, entries: Sequence[EntryRecord], *, prev_term: int | None
    ) -> None:
        """Entries just written to node's log; prev_term is the term of the entry before them."""
        for e in entries:
            known = self._entries.get((e.index, e.term))
            if known is None:
                self._entries[(e.index, e.term)] = (e.digest, prev_term)
            else:
                digest, known_prev = known
                if digest != e.digest:
                    raise SimViolation(
                        "log-matching",
                        f"node {node} persisted a different entry at index {e.index} term {e.term}",
                    )
                if prev_term is not None and known_prev is not None and known_prev != prev_term:
                    raise SimViolation(
                        "log-matching",
                        f"node {node}: entry {e.index}/{e.term} follows term {prev_term}, "
                        f"elsewhere term {known_prev}",
                    )
            prev_term = e.term

    # -- the state machine --------------------------------------------------------------

    def on_apply(
        self,
        node: int,
        entry: EntryRecord,
        *,
        state_digest: bytes,
        put: tuple[str, str | None] | None = None,
    ) -> None:
        """Node applied `entry`, reaching `state_digest`; `put` is the (key, value) it wrote."""
        t = self._node(node)
        if entry.index != t.applied + 1:
            raise SimViolation(
                "apply-order", f"node {node} applied index {entry.index} after {t.applied}"
            )
        self.on_commit(node, index=entry.index, term=entry.term)
        known = self._applied.get(entry.index)
        if known is None:
            self._applied[entry.index] = entry
            if put is not None:
                self._key_history.setdefault(put[0], []).append((entry.index, put[1]))
        elif known != entry:
            raise SimViolation(
                "state-machine-safety",
                f"node {node} applied {entry.term}/{entry.digest.hex()[:8]} at index {entry.index}, "
                f"another node applied {known.term}/{known.digest.hex()[:8]}",
            )
        self._check_state(node, entry.index, state_digest)
        t.applied = entry.index
        t.applied_max_ever = max(t.applied_max_ever, entry.index)

    def on_install_snapshot(self, node: int, *, index: int, state_digest: bytes) -> None:
        """Node replaced its state machine by a snapshot at `index` (or rebuilt from one)."""
        t = self._node(node)
        self._check_state(node, index, state_digest)
        t.applied = index
        t.applied_max_ever = max(t.applied_max_ever, index)

    def _check_state(self, node: int, index: int, digest: bytes) -> None:
        known = self._state_at.setdefault(index, digest)
        if known != digest:
            raise SimViolation(
                "state-machine-safety", f"node {node} has a different state at index {index}"
            )

    def on_restart(self, node: int, *, persisted_commit: int, snap_index: int) -> None:
        """Node restarts from disk: it must be able to re-reach everything it applied."""
        t = self._node(node)
        durable = max(persisted_commit, snap_index)
        if durable < t.applied_max_ever:
            raise SimViolation(
                "apply-durability",
                f"node {node} applied up to {t.applied_max_ever} but restarts with commit "
                f"{persisted_commit}, snapshot {snap_index}",
            )
        t.applied = 0

    # -- reads --------------------------------------------------------------------------

    def value_at(self, key: str, index: int) -> str | None:
        """The value of `key` in the committed log as of `index` (None if never written)."""
        value: str | None = None
        for i, v in self._key_history.get(key, ()):
            if i > index:
                break
            value = v
        return value

    def on_read(self, r: ReadRecord) -> None:
        if r.read_index < r.commit_at_invoke:
            raise SimViolation(
                "read-linearizable",
                f"read of {r.key!r} on node {r.node} invoked at step {r.invoked_step} got read "
                f"index {r.read_index} < {r.commit_at_invoke} already committed",
            )
        if r.applied_index < r.read_index:
            raise SimViolation(
                "read-linearizable",
                f"read on node {r.node} served at applied {r.applied_index} < read index {r.read_index}",
            )
        if r.applied_index > self.max_committed:
            raise SimViolation(
                "read-linearizable", f"read on node {r.node} served beyond the committed log"
            )
        want = self.value_at(r.key, r.applied_index)
        if r.value != want:
            raise SimViolation(
                "read-linearizable",
                f"read of {r.key!r} on node {r.node} at index {r.applied_index} returned "
                f"{r.value!r}, the committed log says {want!r}",
            )
        self.reads_checked += 1
