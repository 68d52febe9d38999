"""Flag parsing follows etcd: names, defaults, ETCD_* variables, derived IDs, refusals."""

from __future__ import annotations

import pytest

from api.server.config import ConfigError, parse_config


def test_defaults_match_etcd() -> None:
    config = parse_config([], {})
    assert config.name == "default"
    assert config.data_dir == "default.etcd"
    assert config.listen_client_urls == ("http://localhost:2379",)
    assert config.snapshot_count == 100000
    assert config.max_request_bytes == 1536 * 1024
    assert config.grpc_max_receive_bytes == 1536 * 1024 + 512 * 1024
    assert config.max_txn_ops == 128
    assert config.quota_backend_bytes == 2 * 1024**3
    assert config.election_ticks == 10
    # etcd's well-known IDs for a default single member.
    assert config.member_id == 0x8E9E05C52164694D
    assert config.cluster_id == 0xCDF818194E3A8C32


def test_ids_of_a_three_member_cluster_match_etcd() -> None:
    cluster = (
        "infra1=http://127.0.0.1:12380,infra2=http://127.0.0.1:22380,infra3=http://127.0.0.1:32380"
    )
    config = parse_config(
        ["--name", "infra1", "--initial-cluster", cluster, "--initial-cluster-token", "etcd-cluster-1"],
        {},
    )
    assert config.member_id == 0x8211F1D0F64F3269
    assert len({m.member_id for m in config.initial_cluster}) == 3


def test_env_is_read_and_flags_win() -> None:
    config = parse_config(
        ["--snapshot-count=7"], {"ETCD_SNAPSHOT_COUNT": "5", "ETCD_NAME": "n1", "ETCD_BOGUS": "x"}
    )
    assert config.snapshot_count == 7
    assert config.name == "n1"
    assert config.data_dir == "n1.etcd"
    assert config.unrecognized_env == ("ETCD_BOGUS",)


def test_grpc_front_defaults_to_http2() -> None:
    assert parse_config([], {}).grpc_front == "http2"
    assert parse_config(["--experimental-grpc-front=grpcio"], {}).grpc_front == "grpcio"


def test_single_dash_and_bool_forms() -> None:
    config = parse_config(["-name", "x", "--pre-vote=false", "--force-new-cluster"], {})
    assert config.name == "x" and config.pre_vote is False and config.force_new_cluster is True


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--no-such-flag"], "unrecognized arguments"),
        (["--snapshot-count", "abc"], "invalid"),
        (["--initial-cluster-state", "old"], "initial-cluster-state"),
        (["--election-timeout", "100"], "at least as 5 times"),
        (["--listen-client-urls", "ftp://x:1"], "URL scheme"),
        (["--name", "a", "--initial-cluster", "b=http://127.0.0.1:1"], "couldn't find local name"),
        (["--max-txn-ops", "0"], "must be positive"),
        (["--experimental-grpc-front", "h3"], "experimental-grpc-front"),
    ],
)
def test_bad_flags_are_refused(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(argv, {})
