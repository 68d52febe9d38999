"""The Raft state machine: term handling, role transitions and step dispatch.

`Raft.step(m)` first applies the rules every role shares (Raft §5.1 terms, §5.2 voting,
pre-vote and the check-quorum leader lease), then hands the message to the current role's
step function in `raft/roles/`. Outputs accumulate in `msgs` and `read_states` and leave
through `RawNode.ready()`. The core never blocks and never reads a clock: time is `tick()`.

Term rules, in order:
- m.term == 0: a local message (MsgHup, MsgProp, MsgReadIndex, ...), no term check.
- m.term > term: a vote request inside our leader lease (check_quorum, we heard from a
  leader within the election timeout) is ignored, unless it comes from a leadership
  transfer; a MsgPreVote never changes our term, nor a granted MsgPreVoteResp (the
  pre-candidate bumps its term only once it wins); everything else makes us a follower of
  the new term (with the sender as leader if it is a MsgApp/MsgHeartbeat/MsgSnap).
- m.term < term: ignored, except that a stale leader's MsgApp/MsgHeartbeat is answered (when
  check_quorum or pre_vote is on) so that it learns the new term and steps down, and a stale
  MsgPreVote gets a rejection so the pre-candidate stops waiting.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn

from raft import confchange
from raft.errors import ProposalDroppedError, invariant
from raft.log import RaftLog
from raft.progress import ProgressTracker
from raft.quorum import VoteResult
from raft.read_only import ReadOnly
from raft.roles import candidate, follower, leader
from raft.storage import LogStorage
from raft.types import (
    CAMPAIGN_ELECTION,
    CAMPAIGN_PRE_ELECTION,
    CAMPAIGN_TRANSFER,
    ENTRY_CONF_CHANGE,
    MSG_APP,
    MSG_APP_RESP,
    MSG_BEAT,
    MSG_CHECK_QUORUM,
    MSG_HEARTBEAT,
    MSG_HUP,
    MSG_PRE_VOTE,
    MSG_PRE_VOTE_RESP,
    MSG_SNAP,
    MSG_VOTE,
    MSG_VOTE_RESP,
    NONE,
    PR_PROBE,
    STATE_CANDIDATE,
    STATE_FOLLOWER,
    STATE_LEADER,
    STATE_PRE_CANDIDATE,
    ConfChange,
    Config,
    ConfState,
    Entry,
    HardState,
    Message,
    ReadState,
    SoftState,
)

_VOTE_TYPES = (MSG_VOTE, MSG_PRE_VOTE)
_LEADER_TYPES = (MSG_APP, MSG_HEARTBEAT, MSG_SNAP)


class Raft:
    """One node's Raft state. Attributes are read by roles/ and raw_node.py."""

    def __init__(self, config: Config, storage: LogStorage) -> None:
        self.id = config.id
        self.config = config
        self.rng = config.rng
        self.raft_log = RaftLog(storage, config.max_committed_size_per_ready_bytes)
        self.trk = ProgressTracker(config.max_inflight_msgs)
        self.term = 0
        self.vote = NONE
        self.lead = NONE
        self.state = STATE_FOLLOWER
        self.is_learner = False
        self.msgs: list[Message] = []
        self.read_states: list[ReadState] = []
        self.pending_read_index_messages: list[Message] = []
        self.read_only = ReadOnly(config.read_only_option)
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.election_timeout = config.election_ticks
        self.heartbeat_timeout = config.heartbeat_ticks
        self.randomized_election_timeout = config.election_ticks
        self.check_quorum = config.check_quorum
        self.pre_vote = config.pre_vote
        self.max_msg_size = config.max_size_per_msg_bytes
        self.max_uncommitted_size = config.max_uncommitted_entries_size
        self.uncommitted_size = 0
        self.lead_transferee = NONE
        self.pending_conf_index = 0
        # Set by a proposal on the leader: new entries wait for the next Ready to be sent.
        self.append_pending = False
        # Set by a ReadIndex on the leader: a heartbeat round goes out with the next Ready.
        self.heartbeat_pending = False
        self.step_fn: Callable[[Raft, Message], None] = follower.step_follower
        self.tick_fn: Callable[[], None] = self.tick_election

        hard_state, conf_state = storage.initial_state()
        self.trk.set_config(conf_state, last_index=self.raft_log.last_index())
        self.is_learner = self.id in self.trk.learners
        if not hard_state.is_empty:
            self._load_state(hard_state)
        if config.applied > 0:
            log = self.raft_log
            invariant(
                config.applied <= log.last_index(),
                f"applied {config.applied} is after the last index {log.last_index()}",
            )
            # The state machine applies only committed entries, so `applied` is committed.
            # The persisted commit index may lag behind it: a commit-only HardState change is
            # written without fsync (Ready.must_sync is False), while the application may
            # have made its applied index durable before a crash.
            log.commit_to(config.applied)
            log.applied_to(config.applied)
        self.become_follower(self.term, NONE)

    def _load_state(self, hs: HardState) -> None:
        log = self.raft_log
        invariant(
            hs.commit <= log.last_index(),
            f"hard state commit {hs.commit} is out of range [{log.committed}, {log.last_index()}]",
        )
        # A snapshot holds only committed state, so a crash after persisting the snapshot but
        # before the newer hard state (Ready steps 1 and 2) leaves hs.commit below it: keep
        # the snapshot's index as the commit point rather than refuse to start.
        log.committed = max(log.committed, hs.commit)
        self.term = hs.term
        self.vote = hs.vote

    # ------------------------------------------------------------------ state

    def soft_state(self) -> SoftState:
        return SoftState(self.lead, self.state)

    def hard_state(self) -> HardState:
        return HardState(self.term, self.vote, self.raft_log.committed)

    def promotable(self) -> bool:
        """Only a voter with no pending snapshot may campaign (learners never do)."""
        return (
            self.id in self.trk.voters
            and not self.is_learner
            and self.raft_log.unstable.snapshot is None
        )

    def past_election_timeout(self) -> bool:
        return self.election_elapsed >= self.randomized_election_timeout

    def reset_randomized_election_timeout(self) -> None:
        # Raft §5.2: a timeout in [election, 2*election) makes split votes rare.
        self.randomized_election_timeout = self.election_timeout + self.rng.randrange(
            self.election_timeout
        )

    # ------------------------------------------------------------------ send

    def send(self, m: Message) -> None:
        self.msgs.append(m)

    # ------------------------------------------------------------------ ticks

    def tick(self) -> None:
        self.tick_fn()

    def tick_election(self) -> None:
        self.election_elapsed += 1
        if self.promotable() and self.past_election_timeout():
            self.election_elapsed = 0
            self.step(Message(MSG_HUP, from_=self.id))

    def tick_heartbeat(self) -> None:
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        if self.election_elapsed >= self.election_timeout:
            self.election_elapsed = 0
            if self.check_quorum:
                self.step(Message(MSG_CHECK_QUORUM, from_=self.id))
            # A transfer that did not finish within an election timeout is abandoned.
            if self.state is STATE_LEADER and self.lead_transferee != NONE:
                self.abort_leader_transfer()
        if self.state is not STATE_LEADER:
            return
        if self.heartbeat_elapsed >= self.heartbeat_timeout:
            self.heartbeat_elapsed = 0
            self.step(Message(MSG_BEAT, from_=self.id))

    # ------------------------------------------------------------ transitions

    def reset(self, term: int) -> None:
        if self.term != term:
            self.term = term
            self.vote = NONE
        self.lead = NONE
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.reset_randomized_election_timeout()
        self.abort_leader_transfer()
        self.trk.reset_votes()
        last = self.raft_log.last_index()
        for id, pr in self.trk.progress.items():
            pr.match = 0
            pr.next = last + 1
            pr.state = PR_PROBE
            pr.pending_snapshot = 0
            pr.probe_sent = False
            pr.recent_active = False
            pr.inflights.reset()
            if id == self.id:
                pr.match = last
        self.pending_conf_index = 0
        self.uncommitted_size = 0
        self.append_pending = False
        self.heartbeat_pending = False
        self.read_only = ReadOnly(self.read_only.option)
        # Reads waiting for a leadership confirmation die with the role; requesters retry.
        self.pending_read_index_messages = []

    def become_follower(self, term: int, lead: int) -> None:
        self.step_fn = follower.step_follower
        self.reset(term)
        self.tick_fn = self.tick_election
        self.lead = lead
        self.state = STATE_FOLLOWER

    def become_candidate(self) -> None:
        invariant(self.state is not STATE_LEADER, "invalid transition [leader -> candidate]")
        self.step_fn = candidate.step_candidate
        self.reset(self.term + 1)
        self.tick_fn = self.tick_election
        self.vote = self.id
        self.state = STATE_CANDIDATE

    def become_pre_candidate(self) -> None:
        invariant(self.state is not STATE_LEADER, "invalid transition [leader -> pre-candidate]")
        # A pre-candidate keeps its term and vote: the pre-vote only asks whether it could win.
        self.step_fn = candidate.step_candidate
        self.trk.reset_votes()
        self.tick_fn = self.tick_election
        self.lead = NONE
        self.state = STATE_PRE_CANDIDATE

    def become_leader(self) -> None:
        invariant(self.state is not STATE_FOLLOWER, "invalid transition [follower -> leader]")
        self.step_fn = leader.step_leader
        self.reset(self.term)
        self.tick_fn = self.tick_heartbeat
        self.lead = self.id
        self.state = STATE_LEADER
        pr = self.trk.progress[self.id]
        pr.become_replicate()
        pr.recent_active = True
        # Conf changes in the uncommitted tail may be pending: no new one until they apply.
        self.pending_conf_index = self.raft_log.last_index()
        # Raft §5.4.2 / §8: an entry of the new term lets earlier entries commit and lets
        # ReadIndex start; it is empty so it does not count against the uncommitted limit.
        invariant(leader.append_entry(self, [Entry(0, 0)]), "empty entry was dropped")

    # ------------------------------------------------------------------ step

    def step(self, m: Message) -> None:
        term = m.term
        if term == self.term or term == 0:
            pass  # the common case first: our own term, or a local message
        elif term > self.term:
            if m.type in _VOTE_TYPES:
                force = m.context == CAMPAIGN_TRANSFER
                in_lease = (
                    self.check_quorum
                    and self.lead != NONE
                    and self.election_elapsed < self.election_timeout
                )
                if not force and in_lease:
                    # Leader lease: we heard from a live leader recently, so this candidate
                    # (likely a partitioned node rejoining) must not disrupt it.
                    return
            if m.type is MSG_PRE_VOTE:
                pass
            elif m.type is MSG_PRE_VOTE_RESP and not m.reject:
                pass
            elif m.type in _LEADER_TYPES:
                self.become_follower(m.term, m.from_)
            else:
                self.become_follower(m.term, NONE)
        else:  # a stale term
            if (self.check_quorum or self.pre_vote) and m.type in (
                MSG_HEARTBEAT,
                MSG_APP,
            ):
                # Tell a stale leader our term. Without this, a node partitioned with
                # check_quorum/pre_vote would never bump the others' term and the stale
                # leader would keep its role forever.
                self.send(Message(MSG_APP_RESP, to=m.from_, from_=self.id, term=self.term))
            elif m.type is MSG_PRE_VOTE:
                self.send(
                    Message(
                        MSG_PRE_VOTE_RESP,
                        to=m.from_,
                        from_=self.id,
                        term=self.term,
                        reject=True,
                    )
                )
            return

        t = m.type
        if t is MSG_HUP:
            self.hup(CAMPAIGN_PRE_ELECTION if self.pre_vote else CAMPAIGN_ELECTION)
        elif t is MSG_VOTE or t is MSG_PRE_VOTE:
            self._handle_vote_request(m)
        else:
            self.step_fn(self, m)

    def _handle_vote_request(self, m: Message) -> None:
        # A learner answers too (as in etcd): a candidate asks only the voters of its own
        # configuration, and if that configuration already promoted us we must vote, or the
        # cluster may be unable to elect anyone. Votes count only for the candidate's voters,
        # so a learner's vote never makes a quorum in a configuration where it is a learner.
        # Raft §5.2: one vote per term (re-granting to the same candidate is harmless);
        # a pre-vote for a future term may be granted even if we voted in this one.
        can_vote = (
            self.vote == m.from_
            or (self.vote == NONE and self.lead == NONE)
            or (m.type is MSG_PRE_VOTE and m.term > self.term)
        )
        resp = MSG_VOTE_RESP if m.type is MSG_VOTE else MSG_PRE_VOTE_RESP
        # Raft §5.4.1: only vote for a candidate whose log is at least as up-to-date.
        if can_vote and self.raft_log.is_up_to_date(m.index, m.log_term):
            # The response carries the request's term: for a pre-vote that is the future
            # term the pre-candidate would campaign in.
            self.send(Message(resp, to=m.from_, from_=self.id, term=m.term))
            if m.type is MSG_VOTE:
                self.election_elapsed = 0
                self.vote = m.from_
        else:
            self.send(Message(resp, to=m.from_, from_=self.id, term=self.term, reject=True))

    def hup(self, kind: bytes) -> None:
        if self.state is STATE_LEADER or not self.promotable():
            return
        if self._has_unapplied_conf_change():
            # The pending change may remove us or change the quorum: apply it first.
            return
        self.campaign(kind)

    def _has_unapplied_conf_change(self) -> bool:
        log = self.raft_log
        if log.applied >= log.committed:
            return False
        lo = max(log.applied + 1, log.first_index())
        for e in log.slice(lo, log.committed + 1, 1 << 62):
            if e.type is ENTRY_CONF_CHANGE:
                return True
        return False

    def campaign(self, kind: bytes) -> None:
        if kind == CAMPAIGN_PRE_ELECTION:
            self.become_pre_candidate()
            vote_type = MSG_PRE_VOTE
            term = self.term + 1
        else:
            self.become_candidate()
            vote_type = MSG_VOTE
            term = self.term
        if self.poll(self.id, True) is VoteResult.WON:
            # A single-voter cluster wins at once.
            if kind == CAMPAIGN_PRE_ELECTION:
                self.campaign(CAMPAIGN_ELECTION)
            else:
                self.become_leader()
            return
        last_index = self.raft_log.last_index()
        last_term = self.raft_log.last_term()
        ctx = CAMPAIGN_TRANSFER if kind == CAMPAIGN_TRANSFER else b""
        for id in self.trk.ids():
            if id == self.id or id not in self.trk.voters:
                continue
            self.send(
                Message(
                    vote_type,
                    to=id,
                    from_=self.id,
                    term=term,
                    log_term=last_term,
                    index=last_index,
                    context=ctx,
                )
            )

    def poll(self, id: int, granted: bool) -> VoteResult:
        self.trk.record_vote(id, granted)
        return self.trk.tally_votes()[2]

    # ------------------------------------------------------------ membership

    def apply_conf_change(self, change: ConfChange) -> ConfState:
        conf = confchange.apply_change(self.trk.conf_state(), change)
        return self.switch_to_config(conf)

    def switch_to_config(self, conf: ConfState) -> ConfState:
        self.trk.set_config(conf, last_index=self.raft_log.last_index())
        member = self.id in self.trk.progress
        self.is_learner = self.id in self.trk.learners
        if not member or self.is_learner:
            # We were removed or demoted. A leader may step down at once if asked; else it
            # keeps leading until the application stops it (etcd's behaviour).
            if self.state is STATE_LEADER and self.config.step_down_on_removal:
                self.become_follower(self.term, NONE)
            return conf
        if self.state is not STATE_LEADER:
            return conf
        # The quorum may have shrunk: the commit index can move.
        if leader.maybe_commit(self):
            leader.bcast_append(self)
        else:
            for id in self.trk.ids():
                if id != self.id:
                    leader.maybe_send_append(self, id, send_if_empty=False)
        if self.lead_transferee != NONE and self.lead_transferee not in self.trk.voters:
            self.abort_leader_transfer()
        return conf

    def abort_leader_transfer(self) -> None:
        self.lead_transferee = NONE

    def reduce_uncommitted_size(self, size: int) -> None:
        if self.uncommitted_size <= size:
            # Entries proposed under an earlier leader may be applied here, overshooting.
            self.uncommitted_size = 0
        else:
            self.uncommitted_size -= size

    def drop_proposal(self, why: str) -> NoReturn:
        raise ProposalDroppedError(f"{self.id}: proposal dropped: {why}")
