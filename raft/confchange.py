"""Pure application of a single ConfChange to a ConfState, with validation.

Only single-step changes are supported (one voter added or removed at a time, Raft thesis
§4.1); two majorities of configurations differing by one voter always overlap, which is why
no joint consensus is needed. Rules (after etcd's confchange.Simple):

- ADD_NODE n: n becomes a voter; a learner n is promoted; a voter n is a no-op.
- ADD_LEARNER_NODE n: n becomes a learner; a voter n is demoted; a learner n is a no-op.
- REMOVE_NODE n: n leaves both sets; an unknown n is a no-op.
- Node id 0 is invalid, and no change may leave the configuration without voters.

The result keeps both id tuples sorted and disjoint.
"""

from __future__ import annotations

from raft.errors import ConfChangeError
from raft.types import NONE, ConfChange, ConfChangeType, ConfState, Entry


def apply_change(conf: ConfState, change: ConfChange) -> ConfState:
    """The ConfState after `change`; raises ConfChangeError when it is invalid."""
    node = change.node_id
    if node == NONE:
        raise ConfChangeError("node id 0 is invalid in a conf change")
    voters = set(conf.voters)
    learners = set(conf.learners)
    if change.type is ConfChangeType.ADD_NODE:
        learners.discard(node)
        voters.add(node)
    elif change.type is ConfChangeType.ADD_LEARNER_NODE:
        voters.discard(node)
        learners.add(node)
    else:
        voters.discard(node)
        learners.discard(node)
    if not voters:
        raise ConfChangeError("removed all voters")
    return ConfState(voters=tuple(sorted(voters)), learners=tuple(sorted(learners)))


def decode(entry: Entry) -> ConfChange | None:
    """The ConfChange of an EntryType.CONF_CHANGE entry, None when malformed."""
    try:
        return ConfChange.unmarshal(entry.data)
    except ValueError:
        return None


def is_valid(conf: ConfState, change: ConfChange) -> bool:
    try:
        apply_change(conf, change)
    except ConfChangeError:
        return False
    return True
