"""Fixtures for kvstore unit tests: a real LMDB store on a temp dir, and an entry applier."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kvstore.errors import KvError
from kvstore.store import Store
from kvstore.types import ApplyResult, Request


class Applier:
    """Applies requests as consecutive raft entries (term 1) and raises failed ones' errors."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.index = store.applied_index

    def result(self, req: Request) -> ApplyResult:
        self.index += 1
        out = self.store.apply(self.index, 1, req)
        if isinstance(out, KvError):
            raise out
        assert out is not None
        return out

    def __call__(self, req: Request) -> object:
        return self.result(req).response


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def store(data_dir: Path) -> Iterator[Store]:
    s = Store(data_dir, durable=False)
    yield s
    s.close()


@pytest.fixture
def kv(store: Store) -> Applier:
    return Applier(store)
