from __future__ import annotations

import pytest

from raft.errors import InvariantError
from raft.inflights import Inflights


def test_window() -> None:
    inf = Inflights(3)
    for i in (5, 7, 9):
        inf.add(i)
    assert inf.full() and inf.count() == 3
    with pytest.raises(InvariantError):
        inf.add(10)
    inf.free_le(6)
    assert inf.count() == 2 and not inf.full()
    with pytest.raises(InvariantError):
        inf.add(8)  # indexes must increase
    inf.free_le(100)
    assert inf.count() == 0
    inf.add(11)
    inf.reset()
    assert inf.count() == 0
