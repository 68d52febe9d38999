"""The public surface of api.client is exactly __all__ (as httpx pins its own)."""

from __future__ import annotations

import inspect

import api.client
from api.client import Client, SyncClient


def test_all_exports_exist_and_are_public() -> None:
    exported = set(api.client.__all__)
    assert len(exported) == len(api.client.__all__), "duplicates in __all__"
    for name in exported:
        assert hasattr(api.client, name), name
        assert not name.startswith("_")
        member = getattr(api.client, name)
        if name == "Op":  # a type alias (a union), has no home module of its own
            continue
        # Everything exported is defined in our private modules, not re-exported from grpc.
        assert getattr(member, "__module__", "api.client").startswith("api.client"), name


def test_no_public_name_missing_from_all() -> None:
    public = {
        n for n, v in vars(api.client).items()
        if not n.startswith("_") and not inspect.ismodule(v)
    }
    assert public == set(api.client.__all__)


def test_private_modules_are_underscored() -> None:
    import pkgutil

    names = [m.name for m in pkgutil.iter_modules(api.client.__path__)]
    assert names and all(n.startswith("_") for n in names), names


def test_sync_client_has_the_async_surface_with_same_parameters() -> None:
    async_methods = {
        n for n, f in inspect.getmembers(Client, inspect.isfunction) if not n.startswith("_")
    }
    sync_methods = {
        n for n, f in inspect.getmembers(SyncClient, inspect.isfunction) if not n.startswith("_")
    }
    assert async_methods == sync_methods
    for name in async_methods:
        a = list(inspect.signature(getattr(Client, name)).parameters)
        s = list(inspect.signature(getattr(SyncClient, name)).parameters)
        if name in ("watch", "keep_alive"):
            # Passed through as **kwargs; the leading parameters still match.
            assert s[:2] == a[:2], name
            continue
        assert a == s, name
