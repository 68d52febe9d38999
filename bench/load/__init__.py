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
etcd are judged by exactly the same client code.
"""
