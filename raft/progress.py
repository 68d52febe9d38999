"""Progress: the leader's view of one follower; ProgressTracker: the config and all views.

A follower's progress is in one of three states (etcd tracker):

- PROBE: we do not know what the follower has. Send at most one MsgApp per heartbeat
  interval (`probe_sent` pauses until an answer or a heartbeat response), moving `next`
  back on each rejection.
- REPLICATE: the follower is known to match up to `match`; stream MsgApp optimistically
  (`next` jumps past what was sent), bounded by the Inflights window.
- SNAPSHOT: the entries the follower needs are compacted; a snapshot at `pending_snapshot`
  is on its way, and nothing else is sent until it is reported or acknowledged.

Invariant: `match < next`. `recent_active` is set by any response and cleared by every
check-quorum round; it tells the leader whether it still hears from a quorum.
"""

from __future__ import annotations

from raft import quorum
from raft.inflights import Inflights
from raft.quorum import VoteResult
from raft.types import (
    PR_PROBE,
    PR_REPLICATE,
    PR_SNAPSHOT,
    ConfState,
    ProgressState,
)


class Progress:
    __slots__ = (
        "match",
        "next",
        "state",
        "pending_snapshot",
        "recent_active",
        "probe_sent",
        "inflights",
        "is_learner",
    )

    def __init__(
        self, *, match: int, next: int, inflight_msgs_max: int, is_learner: bool = False
    ) -> None:
        self.match = match
        self.next = next
        self.state = PR_PROBE
        self.pending_snapshot = 0
        self.recent_active = False
        self.probe_sent = False
        self.inflights = Inflights(inflight_msgs_max)
        self.is_learner = is_learner

    def _reset_state(self, state: ProgressState) -> None:
        self.probe_sent = False
        self.pending_snapshot = 0
        self.state = state
        self.inflights.reset()

    def become_probe(self) -> None:
        # Leaving SNAPSHOT: the follower may have applied the snapshot, so probe just after it.
        if self.state is PR_SNAPSHOT:
            pending = self.pending_snapshot
            self._reset_state(PR_PROBE)
            self.next = max(self.match + 1, pending + 1)
        else:
            self._reset_state(PR_PROBE)
            self.next = self.match + 1

    def become_replicate(self) -> None:
        self._reset_state(PR_REPLICATE)
        self.next = self.match + 1

    def become_snapshot(self, snapshot_index: int) -> None:
        self._reset_state(PR_SNAPSHOT)
        self.pending_snapshot = snapshot_index

    def maybe_update(self, n: int) -> bool:
        """An acknowledgement up to n: raise match (and next); False if it was stale."""
        updated = False
        if self.match < n:
            self.match = n
            updated = True
            self.probe_sent = False
        if self.next < n + 1:
            self.next = n + 1
        return updated

    def optimistic_update(self, n: int) -> None:
        self.next = n + 1

    def maybe_decr_to(self, rejected: int, match_hint: int) -> bool:
        """A rejection of the MsgApp at index `rejected`; back `next` off towards the hint.
        False when the rejection is stale (a reply to an older message)."""
        if self.state is PR_REPLICATE:
            if rejected <= self.match:
                return False
            # The follower lost entries it had or the append raced: probe from match.
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, match_hint + 1), 1)
        self.probe_sent = False
        return True

    def is_paused(self) -> bool:
        if self.state is PR_PROBE:
            return self.probe_sent
        if self.state is PR_REPLICATE:
            return self.inflights.full()
        return True

    def __repr__(self) -> str:
        return f"{self.state.value} match={self.match} next={self.next}"


class ProgressTracker:
    """The current configuration (voters, learners), each member's Progress and the votes
    of the election in progress."""

    __slots__ = ("voters", "learners", "progress", "votes", "inflight_msgs_max", "_ids")

    def __init__(self, inflight_msgs_max: int) -> None:
        self.voters: frozenset[int] = frozenset()
        self.learners: frozenset[int] = frozenset()
        self.progress: dict[int, Progress] = {}
        self.votes: dict[int, bool] = {}
        self.inflight_msgs_max = inflight_msgs_max
        self._ids: list[int] = []

    def set_config(self, conf: ConfState, *, last_index: int) -> None:
        """Switch to `conf`: new members start probing at last_index; removed ones vanish."""
        self.voters = frozenset(conf.voters)
        self.learners = frozenset(conf.learners)
        for id in list(self.progress):
            if id not in self.voters and id not in self.learners:
                del self.progress[id]
        for id in conf.voters + conf.learners:
            pr = self.progress.get(id)
            if pr is None:
                pr = Progress(
                    match=0, next=max(last_index, 1), inflight_msgs_max=self.inflight_msgs_max
                )
                # Mark new members active, or check-quorum could depose the leader before
                # they had a chance to answer.
                pr.recent_active = True
                self.progress[id] = pr
            pr.is_learner = id in self.learners
        self._ids = sorted(self.progress)

    def ids(self) -> list[int]:
        """Member ids in ascending order (iteration order is part of determinism)."""
        return self._ids

    def conf_state(self) -> ConfState:
        return ConfState(voters=tuple(sorted(self.voters)), learners=tuple(sorted(self.learners)))

    def is_singleton(self) -> bool:
        return len(self.voters) == 1

    def committed(self) -> int:
        # Runs on every MsgAppResp: hand quorum the match indexes rather than a callback.
        prs = self.progress
        return quorum.committed_index_of([prs[id].match for id in self.voters])

    def quorum_active(self) -> bool:
        prs = self.progress
        return quorum.has_quorum(self.voters, lambda id: prs[id].recent_active)

    def reset_votes(self) -> None:
        self.votes = {}

    def record_vote(self, id: int, granted: bool) -> None:
        if id not in self.votes:
            self.votes[id] = granted

    def tally_votes(self) -> tuple[int, int, VoteResult]:
        granted = sum(1 for id, v in self.votes.items() if v and id in self.voters)
        rejected = sum(1 for id, v in self.votes.items() if not v and id in self.voters)
        return granted, rejected, quorum.vote_result(self.voters, self.votes)
