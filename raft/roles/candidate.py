"""Candidate and pre-candidate roles: collect votes, yield to a leader of the same term.

A pre-candidate (pre_vote on) asks whether it *could* win at term+1 without bumping its own
term, so a node that was partitioned away cannot disrupt a healthy leader by forcing a
term change (Raft thesis §9.6). Only after a pre-vote quorum does it campaign for real.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from raft.quorum import VoteResult
from raft.roles import follower, leader
from raft.types import (
    CAMPAIGN_ELECTION,
    MSG_APP,
    MSG_HEARTBEAT,
    MSG_PRE_VOTE_RESP,
    MSG_PROP,
    MSG_SNAP,
    MSG_VOTE_RESP,
    NONE,
    STATE_PRE_CANDIDATE,
    Message,
)

if TYPE_CHECKING:
    from raft.core import Raft


def step_candidate(r: Raft, m: Message) -> None:
    # Only responses to our own kind of campaign count: a stale MsgPreVoteResp must not be
    # tallied as a real vote.
    my_vote_resp = (
        MSG_PRE_VOTE_RESP if r.state is STATE_PRE_CANDIDATE else MSG_VOTE_RESP
    )
    t = m.type
    if t is MSG_PROP:
        r.drop_proposal("no leader (campaigning)")
    elif t is MSG_APP:
        r.become_follower(m.term, m.from_)  # the sender is a leader of our term
        follower.handle_append_entries(r, m)
    elif t is MSG_HEARTBEAT:
        r.become_follower(m.term, m.from_)
        follower.handle_heartbeat(r, m)
    elif t is MSG_SNAP:
        r.become_follower(m.term, m.from_)
        follower.handle_snapshot(r, m)
    elif t is my_vote_resp:
        res = r.poll(m.from_, not m.reject)
        if res is VoteResult.WON:
            if r.state is STATE_PRE_CANDIDATE:
                r.campaign(CAMPAIGN_ELECTION)
            else:
                r.become_leader()
                leader.bcast_append(r)
        elif res is VoteResult.LOST:
            # A pre-candidate's term never moved; a candidate keeps the term it voted in.
            r.become_follower(r.term, NONE)
    # MsgTimeoutNow while campaigning, and other messages, are ignored.
