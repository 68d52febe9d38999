"""The metrics registry: counters, gauges, histograms, labels and the text format."""

from __future__ import annotations

import math

import pytest

from api.server.metrics import METRICS, EtcdMetrics, Registry, exponential_buckets


def test_counter_and_labels_render_in_text_format() -> None:
    r = Registry()
    c = r.counter("reqs_total", "Requests.", ("method", "code"))
    c.labels("Range", "OK").inc()
    c.labels("Range", "OK").inc(2)
    c.labels("Put", 'we"ird\\').inc()
    assert r.render() == (
        "# HELP reqs_total Requests.\n"
        "# TYPE reqs_total counter\n"
        'reqs_total{method="Range",code="OK"} 3\n'
        'reqs_total{method="Put",code="we\\"ird\\\\"} 1\n'
    )


def test_counter_rejects_decrease_and_label_misuse() -> None:
    r = Registry()
    c = r.counter("c_total", "C.")
    with pytest.raises(ValueError):
        c.inc(-1)
    labelled = r.counter("l_total", "L.", ("a",))
    with pytest.raises(ValueError):
        labelled.inc()
    with pytest.raises(ValueError):
        labelled.labels("x", "y")
    with pytest.raises(ValueError):
        r.counter("c_total", "again")


def test_gauge_set_inc_dec_and_function() -> None:
    r = Registry()
    g = r.gauge("g", "G.")
    g.set(5)
    g.inc()
    g.dec(2.5)
    assert g.get() == 3.5
    assert "\ng 3.5\n" in r.render()
    g.set_function(lambda: 42)
    assert "\ng 42\n" in r.render()
    g.set_function(None)
    assert g.get() == 3.5


def test_histogram_buckets_are_cumulative_and_le_inclusive() -> None:
    r = Registry()
    h = r.histogram("lat_seconds", "Latency.", buckets=(0.1, 1.0))
    for v in (0.05, 0.1, 0.5, 2.0):
        h.observe(v)
    lines = r.render().splitlines()[2:]
    assert lines == [
        'lat_seconds_bucket{le="0.1"} 2',
        'lat_seconds_bucket{le="1"} 3',
        'lat_seconds_bucket{le="+Inf"} 4',
        "lat_seconds_sum 2.65",
        "lat_seconds_count 4",
    ]


def test_labelled_histogram() -> None:
    r = Registry()
    h = r.histogram("h", "H.", ("op",), buckets=(1.0,))
    h.labels("put").observe(0.5)
    assert 'h_bucket{op="put",le="1"} 1' in r.render()


def test_exponential_buckets_match_etcds_fsync_histogram() -> None:
    b = exponential_buckets(0.001, 2, 14)
    assert len(b) == 14 and b[0] == 0.001 and math.isclose(b[-1], 8.192)
    with pytest.raises(ValueError):
        exponential_buckets(0, 2, 3)


def test_etcd_metric_names_and_types() -> None:
    r = Registry()
    m = EtcdMetrics(r)
    m.proposals_committed_total.set(7)
    m.grpc_handled_total.labels("unary", "etcdserverpb.KV", "Range", "OK").inc()
    text = r.render()
    for name, kind in [
        ("etcd_server_has_leader", "gauge"),
        ("etcd_server_leader_changes_seen_total", "counter"),
        ("etcd_server_proposals_committed_total", "gauge"),
        ("etcd_server_proposals_applied_total", "gauge"),
        ("etcd_server_proposals_pending", "gauge"),
        ("etcd_server_proposals_failed_total", "counter"),
        ("etcd_mvcc_db_total_size_in_bytes", "gauge"),
        ("etcd_mvcc_db_total_size_in_use_in_bytes", "gauge"),
        ("etcd_debugging_mvcc_keys_total", "gauge"),
        ("etcd_disk_wal_fsync_duration_seconds", "histogram"),
        ("etcd_disk_backend_commit_duration_seconds", "histogram"),
        ("grpc_server_started_total", "counter"),
        ("grpc_server_handled_total", "counter"),
    ]:
        assert f"# TYPE {name} {kind}\n" in text, name
    assert "etcd_server_proposals_committed_total 7\n" in text
    assert (
        'grpc_server_handled_total{grpc_type="unary",grpc_service="etcdserverpb.KV",'
        'grpc_method="Range",grpc_code="OK"} 1\n'
    ) in text
    assert METRICS.has_leader.name == "etcd_server_has_leader"
