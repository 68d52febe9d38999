"""`kvbench load`: gRPC load against kvstore and real etcd 3.4, side by side.

Theory of operation. The driver (driver.py) starts or is pointed at a server (cluster.py),
optionally preloads keys, then spawns `--procs` worker processes (worker.py). Each worker
runs its share of the `--conns` gRPC channels and `--clients` concurrent clients on one
asyncio loop (grpc.aio) and records per-operation latency in a mergeable log-bucketed
histogram (histogram.py). Workers report in JSON over their stdout (never pickle); the driver
merges them and samples the server's CPU seconds and peak RSS from /proc around the measured
window. report.py prints the table and the kvstore/etcd ratios of a `--compare-etcd` run.

The workloads themselves (put, range, range-serializable, txn-cas, watch fan-out, lease
grant/keepalive/revoke) are in workloads.py and use only the etcd v3 gRPC API, so kvstore and
etcd are judged by exactly the same client code. The watch fan-out's events are received by
gowatch/main.go (etcd's Go clientv3; gowatch_build.py builds it from Debian's packaged
sources) because a Python receiver cannot keep up with 100,000 events/s.

Clusters (issue 5): cluster.py starts N members of either kind (--nodes); connections are
spread over the members leader first, CPU is summed over the members and RSS is that of the
largest (procstat.py). The scenarios (scenarios.py) run on their own 3-member clusters:
failover.py (SIGKILL the leader under a write loop, time to the next acknowledged write) and
catchup.py (a new member catching up through the snapshot of a compacted leader).
"""
