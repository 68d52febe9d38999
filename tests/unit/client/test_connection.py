"""Endpoint parsing and TLS option checks (no sockets: channels are created lazily)."""

from __future__ import annotations

import pytest

from api.client import TLSConfig
from api.client._connection import Connection, parse_endpoint


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("127.0.0.1:2379", ("127.0.0.1:2379", False)),
        ("http://127.0.0.1:2379", ("127.0.0.1:2379", False)),
        ("https://etcd.example:2379/", ("etcd.example:2379", True)),
        ("unix:///tmp/etcd.sock", ("unix:///tmp/etcd.sock", False)),
    ],
)
def test_parse_endpoint(given: str, expected: tuple[str, bool]) -> None:
    assert parse_endpoint(given) == expected


@pytest.mark.parametrize("bad", ["", "http://", "localhost"])
def test_parse_endpoint_refuses_missing_port(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_endpoint(bad)


def test_tls_cert_and_key_go_together(tmp_path: object) -> None:
    with pytest.raises(ValueError):
        TLSConfig(cert_file="c.pem").credentials()


def test_connection_needs_endpoints_and_fails_over_round_robin() -> None:
    with pytest.raises(ValueError):
        Connection([], tls=None, timeout_s=1.0, attempts_max=1)
    c = Connection(["a:1", "b:2", "c:3"], tls=None, timeout_s=1.0, attempts_max=3)
    c.failover(0)
    assert c.current == 1
    c.failover(0)  # a second task that saw endpoint 0 fail does not skip endpoint 1
    assert c.current == 1
    c.failover(1)
    c.failover(2)
    assert c.current == 0
