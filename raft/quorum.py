"""Pure majority computations over a set of voters (no state, no I/O).

`committed_index` is the largest index that a majority of voters have matched: sort the
match indexes in decreasing order and take the one at position n//2 (0-based). Worked
example: voters {1,2,3} with matches {1: 7, 2: 5, 3: 9} sort to [9, 7, 5]; position 1
gives 7, held by nodes 1 and 3, a majority. An empty voter set places no constraint: it
returns a huge index, so the caller's min() with other limits decides (etcd does the same).

`vote_result` says whether the votes cast so far already decide the election.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Mapping

NO_CONSTRAINT = (1 << 63) - 1


class VoteResult(enum.Enum):
    PENDING = "VotePending"
    LOST = "VoteLost"
    WON = "VoteWon"


def committed_index(voters: Collection[int], match: Callable[[int], int]) -> int:
    return committed_index_of([match(v) for v in voters])


def committed_index_of(matches: list[int]) -> int:
    """`committed_index` given the voters' match indexes, in any order (`matches` is
    sorted in place: pass a fresh list)."""
    n = len(matches)
    if n == 0:
        return NO_CONSTRAINT
    if n == 1:
        return matches[0]
    matches.sort(reverse=True)
    return matches[n // 2]


def vote_result(voters: Collection[int], votes: Mapping[int, bool]) -> VoteResult:
    if not voters:
        # An empty config wins every vote (it places no constraint), as in etcd.
        return VoteResult.WON
    granted = rejected = 0
    for v in voters:
        cast = votes.get(v)
        if cast is None:
            continue
        if cast:
            granted += 1
        else:
            rejected += 1
    q = len(voters) // 2 + 1
    if granted >= q:
        return VoteResult.WON
    if len(voters) - rejected >= q:
        return VoteResult.PENDING
    return VoteResult.LOST


def has_quorum(voters: Collection[int], active: Callable[[int], bool]) -> bool:
    """Whether a majority of `voters` satisfy `active` (check-quorum)."""
    if not voters:
        return True
    return sum(1 for v in voters if active(v)) >= len(voters) // 2 + 1
