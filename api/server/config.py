"""Server configuration: etcd 3.4's flag names, defaults and `ETCD_*` environment variables.

`parse_config(argv, environ)` returns a frozen `ServerConfig` or raises `ConfigError` with a
message in etcd's words. It never touches the file system, so `main` can refuse bad flags
before the data dir is opened (exit code 2).

Precedence follows etcd: a command-line flag wins over its `ETCD_<FLAG>` variable (etcd
logs that the variable is shadowed); an `ETCD_*` variable that names no flag is reported
as unrecognized but is not fatal.

Member and cluster IDs are derived as etcd derives them, so a fresh cluster with the same
token and peer URLs gets the same IDs on every run: member ID = first 8 bytes (big endian)
of SHA-1(sorted peer URLs joined + token); cluster ID = first 8 bytes of SHA-1 over the
sorted member IDs as 8-byte big-endian integers.
"""

from __future__ import annotations

import argparse
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

DEFAULT_MAX_REQUEST_BYTES = 1536 * 1024
DEFAULT_QUOTA_BACKEND_BYTES = 2 * 1024**3
MAX_QUOTA_BACKEND_BYTES = 8 * 1024**3
GRPC_OVERHEAD_BYTES = 512 * 1024


class ConfigError(ValueError):
    """A flag or environment variable that etcd would also refuse."""


@dataclass(frozen=True, slots=True)
class Member:
    name: str
    peer_urls: tuple[str, ...]
    member_id: int


@dataclass(frozen=True, slots=True)
class ServerConfig:
    name: str
    data_dir: str
    wal_dir: str
    listen_client_urls: tuple[str, ...]
    advertise_client_urls: tuple[str, ...]
    listen_peer_urls: tuple[str, ...]
    initial_advertise_peer_urls: tuple[str, ...]
    listen_metrics_urls: tuple[str, ...]
    initial_cluster: tuple[Member, ...]
    initial_cluster_state: str
    initial_cluster_token: str
    snapshot_count: int
    max_snapshots: int
    max_wals: int
    heartbeat_interval_ms: int
    election_timeout_ms: int
    pre_vote: bool
    quota_backend_bytes: int
    max_request_bytes: int
    max_txn_ops: int
    auto_compaction_mode: str
    auto_compaction_retention: str
    lease_checkpoint: bool
    watch_progress_notify_interval_s: float
    log_level: str
    strict_reconfig_check: bool
    force_new_cluster: bool
    test_partition_file: str = ""
    auto_promote_learners: bool = False
    grpc_front: str = "http2"
    unrecognized_env: tuple[str, ...] = field(default=())

    @property
    def member_id(self) -> int:
        for member in self.initial_cluster:
            if member.name == self.name:
                return member.member_id
        raise ConfigError(f"couldn't find local name {self.name!r} in the initial cluster configuration")

    @property
    def cluster_id(self) -> int:
        return compute_cluster_id([m.member_id for m in self.initial_cluster])

    @property
    def grpc_max_receive_bytes(self) -> int:
        return self.max_request_bytes + GRPC_OVERHEAD_BYTES

    @property
    def election_ticks(self) -> int:
        return max(1, self.election_timeout_ms // self.heartbeat_interval_ms)


def compute_member_id(peer_urls: Sequence[str], token: str) -> int:
    digest = hashlib.sha1(("".join(sorted(peer_urls)) + token).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def compute_cluster_id(member_ids: Sequence[int]) -> int:
    raw = b"".join(i.to_bytes(8, "big") for i in sorted(member_ids))
    return int.from_bytes(hashlib.sha1(raw).digest()[:8], "big")


_BOOL = {"true": True, "1": True, "t": True, "false": False, "0": False, "f": False}


def _bool(value: str) -> bool:
    try:
        return _BOOL[value.lower()]
    except KeyError:
        raise argparse.ArgumentTypeError(f"invalid boolean value {value!r}") from None


def _parse_size(value: str) -> int:
    if not re.fullmatch(r"-?\d+", value.strip()):
        raise argparse.ArgumentTypeError(f"invalid value {value!r}: expected an integer")
    return int(value)


def _urls(value: str) -> tuple[str, ...]:
    urls = tuple(u.strip() for u in value.split(",") if u.strip())
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https", "unix", "unixs") or not parts.netloc:
            raise argparse.ArgumentTypeError(f'URL scheme must be http, https, unix, or unixs: {url}')
        if parts.scheme in ("http", "https"):
            try:
                port = parts.port
            except ValueError:
                raise argparse.ArgumentTypeError(f"invalid port in URL {url}") from None
            if port is None:
                raise argparse.ArgumentTypeError(f'URL address does not have the form "host:port": {url}')
    return urls


# name -> (type, default, help). Bool flags accept `--flag`, `--flag=true|false`.
_FLAGS: dict[str, tuple[object, object, str]] = {
    "name": (str, "default", "Human-readable name for this member."),
    "data-dir": (str, "", "Path to the data directory (default '${name}.etcd')."),
    "wal-dir": (str, "", "Path to the dedicated wal directory."),
    "listen-client-urls": (_urls, "http://localhost:2379", "URLs to listen on for client traffic."),
    "advertise-client-urls": (_urls, "http://localhost:2379", "Client URLs to advertise."),
    "listen-peer-urls": (_urls, "http://localhost:2380", "URLs to listen on for peer traffic."),
    "initial-advertise-peer-urls": (_urls, "http://localhost:2380", "Peer URLs to advertise."),
    "listen-metrics-urls": (str, "", "URLs to listen on for /metrics and /health."),
    "initial-cluster": (str, "", "Initial cluster configuration for bootstrapping."),
    "initial-cluster-state": (str, "new", "Initial cluster state ('new' or 'existing')."),
    "initial-cluster-token": (str, "etcd-cluster", "Initial cluster token for bootstrapping."),
    "snapshot-count": (_parse_size, 100000, "Committed transactions to trigger a snapshot to disk."),
    "max-snapshots": (_parse_size, 5, "Maximum number of snapshot files to retain (0 is unlimited)."),
    "max-wals": (_parse_size, 5, "Maximum number of wal files to retain (0 is unlimited)."),
    "heartbeat-interval": (_parse_size, 100, "Time (in milliseconds) of a heartbeat interval."),
    "election-timeout": (_parse_size, 1000, "Time (in milliseconds) for an election to timeout."),
    "pre-vote": (_bool, True, "Enable the raft Pre-Vote algorithm (kvstore default: true)."),
    "quota-backend-bytes": (_parse_size, 0, "Raise alarms when backend size exceeds the given quota (0 defaults to 2 GiB)."),
    "max-request-bytes": (_parse_size, DEFAULT_MAX_REQUEST_BYTES, "Maximum client request size in bytes."),
    "max-txn-ops": (_parse_size, 128, "Maximum number of operations permitted in a transaction."),
    "auto-compaction-mode": (str, "periodic", "'periodic' or 'revision'."),
    "auto-compaction-retention": (str, "0", "Auto compaction retention (0 disables)."),
    "experimental-enable-lease-checkpoint": (_bool, True, "Persist remaining lease TTLs (kvstore default: true)."),
    "experimental-watch-progress-notify-interval": (str, "10m", "Duration of periodic watch progress notifications."),
    "log-level": (str, "info", "debug, info, warn, error, panic, or fatal."),
    "logger": (str, "zap", "Accepted for compatibility; kvstore logs with Python logging."),
    "strict-reconfig-check": (_bool, True, "Reject reconfiguration requests that would cause quorum loss."),
    "force-new-cluster": (_bool, False, "Force to create a new one member cluster."),
    "experimental-test-partition-file": (str, "", "TEST ONLY: file of peer IDs (hex) to cut off."),
    "experimental-auto-promote-learners": (_bool, False, "Promote a learner once it has caught up (beyond etcd)."),
    "experimental-grpc-front": (str, "http2", "Client gRPC server: 'http2' (kvstore's own HTTP/2, faster) or 'grpcio' (grpc.aio) (beyond etcd)."),
}
GRPC_FRONTS = ("http2", "grpcio")

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)$")
_DURATION_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration_s(value: str) -> float:
    match = _DURATION.match(value.strip())
    if not match:
        raise ConfigError(f"invalid duration {value!r}")
    return float(match.group(1)) * _DURATION_UNIT_S[match.group(2)]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(message)


def _build_parser() -> _Parser:
    parser = _Parser(prog="kvstore", add_help=True, allow_abbrev=False)
    for flag, (kind, default, help_text) in _FLAGS.items():
        dest = flag.replace("-", "_")
        if kind is _bool:
            parser.add_argument(
                f"--{flag}", f"-{flag}", dest=dest, nargs="?", const=True, default=None,
                type=_bool, help=f"{help_text} (default {default})",
            )
        else:
            parser.add_argument(
                f"--{flag}", f"-{flag}", dest=dest, default=None, type=kind,  # type: ignore[arg-type]
                help=f"{help_text} (default {default})",
            )
    parser.add_argument("--version", action="store_true", help="Print the version and exit.")
    return parser


# Variables etcd reads that are not flags (ETCD_UNSUPPORTED_ARCH gates non-amd64 builds).
_ENV_NOT_FLAGS = frozenset({"ETCD_UNSUPPORTED_ARCH"})


def _env_to_argv(environ: Mapping[str, str], given: set[str]) -> tuple[list[str], list[str]]:
    argv: list[str] = []
    unknown: list[str] = []
    for key, value in sorted(environ.items()):
        if not key.startswith("ETCD_") or key in _ENV_NOT_FLAGS:
            continue
        flag = key[len("ETCD_"):].lower().replace("_", "-")
        if flag not in _FLAGS:
            unknown.append(key)
            continue
        if flag in given:
            continue  # the command-line flag shadows the variable, as in etcd
        argv.append(f"--{flag}={value}")
    return argv, unknown


def _given_flags(argv: Sequence[str]) -> set[str]:
    given = set()
    for token in argv:
        if token.startswith("-"):
            given.add(token.lstrip("-").split("=", 1)[0])
    return given


def parse_initial_cluster(value: str, token: str) -> tuple[Member, ...]:
    by_name: dict[str, list[str]] = {}
    for item in value.split(","):
        if not item.strip():
            continue
        if "=" not in item:
            raise ConfigError(f"invalid --initial-cluster entry {item!r}: expected name=peer-url")
        name, url = item.split("=", 1)
        try:
            _urls(url)
        except argparse.ArgumentTypeError as exc:
            raise ConfigError(str(exc)) from None
        by_name.setdefault(name.strip(), []).append(url.strip())
    members = tuple(
        Member(name, tuple(urls), compute_member_id(urls, token)) for name, urls in by_name.items()
    )
    ids = [m.member_id for m in members]
    if len(set(ids)) != len(ids):
        raise ConfigError("--initial-cluster has duplicate peer URLs")
    return members


def parse_config(argv: Sequence[str], environ: Mapping[str, str]) -> ServerConfig:
    parser = _build_parser()
    env_argv, unknown_env = _env_to_argv(environ, _given_flags(argv))
    ns = parser.parse_args([*env_argv, *argv])
    values: dict[str, Any] = {}
    for flag, (kind, default, _help) in _FLAGS.items():
        given = getattr(ns, flag.replace("-", "_"))
        if given is None:
            given = _urls(str(default)) if kind is _urls else default
        values[flag.replace("-", "_")] = given
    name = str(values["name"])
    state = str(values["initial_cluster_state"])
    if state not in ("new", "existing"):
        raise ConfigError(f'invalid value "{state}" for flag -initial-cluster-state: invalid value')
    heartbeat = int(values["heartbeat_interval"])
    election = int(values["election_timeout"])
    if heartbeat <= 0:
        raise ConfigError(f"--heartbeat-interval must be positive, got {heartbeat}")
    if election < 5 * heartbeat:
        raise ConfigError(
            f"--election-timeout[{election}ms] should be at least as 5 times as "
            f"--heartbeat-interval[{heartbeat}ms]"
        )
    if election > 50000:
        raise ConfigError(f"--election-timeout[{election}ms] is too long, and should be set less than 50 seconds")
    mode = str(values["auto_compaction_mode"])
    if mode not in ("periodic", "revision"):
        raise ConfigError(f"unknown auto-compaction-mode {mode!r}")
    front = str(values["experimental_grpc_front"])
    if front not in GRPC_FRONTS:
        raise ConfigError(f"unknown --experimental-grpc-front {front!r} (want one of {', '.join(GRPC_FRONTS)})")
    level = str(values["log_level"])
    if level not in ("debug", "info", "warn", "error", "panic", "fatal"):
        raise ConfigError(f"unknown log level {level!r}")
    quota = int(values["quota_backend_bytes"])
    if quota < 0:
        raise ConfigError("--quota-backend-bytes must not be negative")
    for key in ("snapshot_count", "max_request_bytes", "max_txn_ops"):
        if int(values[key]) <= 0:
            raise ConfigError(f"--{key.replace('_', '-')} must be positive")
    token = str(values["initial_cluster_token"])
    advertise_peer = tuple(values["initial_advertise_peer_urls"])
    cluster_spec = str(values["initial_cluster"]) or ",".join(f"{name}={u}" for u in advertise_peer)
    members = parse_initial_cluster(cluster_spec, token)
    metrics = str(values["listen_metrics_urls"])
    try:
        metrics_urls = _urls(metrics) if metrics else ()
    except argparse.ArgumentTypeError as exc:
        raise ConfigError(str(exc)) from None
    config = ServerConfig(
        name=name,
        data_dir=str(values["data_dir"]) or f"{name}.etcd",
        wal_dir=str(values["wal_dir"]),
        listen_client_urls=tuple(values["listen_client_urls"]),
        advertise_client_urls=tuple(values["advertise_client_urls"]),
        listen_peer_urls=tuple(values["listen_peer_urls"]),
        initial_advertise_peer_urls=advertise_peer,
        listen_metrics_urls=metrics_urls,
        initial_cluster=members,
        initial_cluster_state=state,
        initial_cluster_token=token,
        snapshot_count=int(values["snapshot_count"]),
        max_snapshots=int(values["max_snapshots"]),
        max_wals=int(values["max_wals"]),
        heartbeat_interval_ms=heartbeat,
        election_timeout_ms=election,
        pre_vote=bool(values["pre_vote"]),
        quota_backend_bytes=quota or DEFAULT_QUOTA_BACKEND_BYTES,
        max_request_bytes=int(values["max_request_bytes"]),
        max_txn_ops=int(values["max_txn_ops"]),
        auto_compaction_mode=mode,
        auto_compaction_retention=str(values["auto_compaction_retention"]),
        lease_checkpoint=bool(values["experimental_enable_lease_checkpoint"]),
        watch_progress_notify_interval_s=parse_duration_s(
            str(values["experimental_watch_progress_notify_interval"])
        ),
        log_level=level,
        strict_reconfig_check=bool(values["strict_reconfig_check"]),
        force_new_cluster=bool(values["force_new_cluster"]),
        test_partition_file=str(values["experimental_test_partition_file"]),
        auto_promote_learners=bool(values["experimental_auto_promote_learners"]),
        grpc_front=front,
        unrecognized_env=tuple(unknown_env),
    )
    config.member_id  # noqa: B018 -- raises ConfigError when the name is not in the cluster
    return config
