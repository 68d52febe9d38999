"""The workloads: what one benchmark client does in a loop, over etcd's v3 gRPC API.

Every workload is a class built from a `WorkerSpec` (one worker process's share of the
run). `setup(channels)` opens whatever must exist before the clock starts (streams, watch
registrations); `run(deadline)` drives the load until the monotonic `deadline`; `result()`
returns the counts and histograms. Closed-loop workloads (put, range, txn-cas, lease) run
`clients` coroutines, each sending one request and waiting for its answer, spread
round-robin over the worker's channels (etcd's benchmark tool does the same with its
--conns/--clients).

The watch fan-out workload is open loop: the worker that owns the putter sends puts at a
fixed rate, each value starting with the put's send time (time.time_ns, one clock for all
processes on the host), and every watcher measures the delivery latency of every event as
arrival time minus send time. After the measured window the putter writes a sentinel key;
a watcher is complete when the sentinel arrives, and the run is "delivered in full" when
every watcher is complete and the events delivered equal puts x watchers.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc.aio

from api.proto import kv_pb2, rpc_pb2, rpc_pb2_grpc
from bench.load.errors import invariant
from bench.load.histogram import Histogram

WORKLOADS = ("put", "range", "range-serializable", "txn-cas", "watch", "lease")
# Workloads that read keys and therefore need `key_space` keys preloaded.
NEEDS_KEYS = ("range", "range-serializable", "txn-cas")
WATCH_PREFIX = b"w/"
WATCH_RANGE_END = b"w0"  # "/" + 1: the whole w/ prefix
WATCH_SENTINEL = b"w/~end"
LEASE_TTL_S = 30
PUTTER_INFLIGHT_MAX = 1000


def key_of(index: int, *, key_size: int, key_space: int) -> bytes:
    """The key for `index`: "k" + zero-padded decimal, `key_size` bytes when it fits."""
    width = max(key_size - 1, len(str(max(0, key_space - 1))))
    return b"k" + str(index).zfill(width).encode()


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """One worker process's share of a run (sent to it as JSON)."""

    workload: str
    endpoints: tuple[str, ...]
    conns: int
    clients: int
    duration_s: float
    key_size: int
    val_size: int
    key_space: int
    seed: int
    watchers: int = 0
    watch_streams: int = 0
    putter: bool = False
    watch_rate: float = 0.0
    drain_s: float = 10.0
    # This worker's first connection number over the whole run: connection k goes to
    # endpoints[k % len(endpoints)], which spreads a run's connections over a cluster.
    conn_offset: int = 0
    # Which program runs this share: "python" (bench/load/worker.py) or "go" (the watch
    # receiver of bench/load/gowatch, for the watchers of a watch run).
    runner: str = "python"

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WorkerSpec:
        data = dict(data)
        data["endpoints"] = tuple(data["endpoints"])
        return cls(**data)


@dataclass(slots=True)
class Outcome:
    """What a worker measured; `hist` holds the latency of the counted operations."""

    ops: int = 0
    errors: int = 0
    hist: Histogram = field(default_factory=Histogram)
    sub: dict[str, Histogram] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    first_error: str = ""

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    def error(self, exc: BaseException) -> None:
        self.errors += 1
        if not self.first_error:
            self.first_error = f"{type(exc).__name__}: {exc}"[:500]

    def to_json(self) -> dict[str, Any]:
        return {
            "ops": self.ops, "errors": self.errors, "hist": self.hist.to_json(),
            "sub": {k: h.to_json() for k, h in self.sub.items()},
            "counters": self.counters, "first_error": self.first_error,
        }


class Workload:
    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self.rng = random.Random(spec.seed)
        self.out = Outcome()
        self.channels: list[grpc.aio.Channel] = []
        self.value = bytes(self.rng.getrandbits(8) for _ in range(spec.val_size))

    def key(self, index: int) -> bytes:
        return key_of(index, key_size=self.spec.key_size, key_space=self.spec.key_space)

    async def setup(self, channels: list[grpc.aio.Channel]) -> None:
        self.channels = channels

    async def run(self, deadline: float) -> None:
        await asyncio.gather(*(
            self.client(i, self.channels[i % len(self.channels)], deadline)
            for i in range(self.spec.clients)
        ))

    async def client(self, i: int, channel: grpc.aio.Channel, deadline: float) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        pass


class _ClosedLoop(Workload):
    """One request at a time per client; subclasses give `op`."""

    async def client(self, i: int, channel: grpc.aio.Channel, deadline: float) -> None:
        state = await self.client_state(i, channel)
        hist = self.out.hist
        clock = time.monotonic_ns
        deadline_ns = int(deadline * 1e9)
        while True:
            t0 = clock()
            if t0 >= deadline_ns:
                return
            try:
                await self.op(state)
            except grpc.aio.AioRpcError as exc:
                self.out.error(exc)
                await asyncio.sleep(0.01)  # do not spin on a server that refuses everything
                continue
            hist.record((clock() - t0) // 1000)
            self.out.ops += 1

    async def client_state(self, i: int, channel: grpc.aio.Channel) -> Any:
        return rpc_pb2_grpc.KVStub(channel)

    async def op(self, state: Any) -> None:
        raise NotImplementedError


class PutWorkload(_ClosedLoop):
    async def op(self, state: Any) -> None:
        key = self.key(self.rng.randrange(self.spec.key_space))
        await state.Put(rpc_pb2.PutRequest(key=key, value=self.value))


class RangeWorkload(_ClosedLoop):
    serializable = False

    async def op(self, state: Any) -> None:
        key = self.key(self.rng.randrange(self.spec.key_space))
        await state.Range(rpc_pb2.RangeRequest(key=key, serializable=self.serializable))


class RangeSerializableWorkload(RangeWorkload):
    serializable = True


class TxnCasWorkload(_ClosedLoop):
    """Compare-and-swap on mod_revision: each client remembers the last mod_revision it
    saw per key, so contention (other clients on the same key) shows up as failed txns.
    One op is one CAS attempt: a Txn, preceded by a Range the first time this client
    touches the key (counted in `initial_reads`; with a key space much larger than the
    ops of a short run, most ops are Range + Txn)."""

    async def client_state(self, i: int, channel: grpc.aio.Channel) -> Any:
        return (rpc_pb2_grpc.KVStub(channel), {})

    async def op(self, state: Any) -> None:
        stub, seen = state
        index = self.rng.randrange(self.spec.key_space)
        key = self.key(index)
        mod_revision = seen.get(index)
        if mod_revision is None:
            resp = await stub.Range(rpc_pb2.RangeRequest(key=key))
            mod_revision = resp.kvs[0].mod_revision if resp.kvs else 0
            self.out.count("initial_reads")
        txn = rpc_pb2.TxnRequest(
            compare=[rpc_pb2.Compare(
                key=key, result=rpc_pb2.Compare.EQUAL, target=rpc_pb2.Compare.MOD,
                mod_revision=mod_revision,
            )],
            success=[rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key, value=self.value))],
            failure=[rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=key))],
        )
        resp = await stub.Txn(txn)
        if resp.succeeded:
            seen[index] = resp.header.revision
            self.out.count("succeeded")
        else:
            kvs = resp.responses[0].response_range.kvs
            seen[index] = kvs[0].mod_revision if kvs else 0
            self.out.count("failed")


class LeaseWorkload(Workload):
    """Each client cycles grant -> one keepalive on its own stream -> revoke; every RPC is
    one op, with a histogram per kind in `sub`."""

    async def client(self, i: int, channel: grpc.aio.Channel, deadline: float) -> None:
        stub = rpc_pb2_grpc.LeaseStub(channel)
        stream = stub.LeaseKeepAlive()
        subs = {k: self.out.sub.setdefault(k, Histogram()) for k in ("grant", "keepalive", "revoke")}
        clock = time.monotonic_ns
        deadline_ns = int(deadline * 1e9)
        try:
            while clock() < deadline_ns:
                try:
                    t0 = clock()
                    grant = await stub.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=LEASE_TTL_S))
                    t1 = clock()
                    await stream.write(rpc_pb2.LeaseKeepAliveRequest(ID=grant.ID))
                    ka = await stream.read()
                    t2 = clock()
                    await stub.LeaseRevoke(rpc_pb2.LeaseRevokeRequest(ID=grant.ID))
                    t3 = clock()
                except grpc.aio.AioRpcError as exc:
                    self.out.error(exc)
                    stream.cancel()
                    stream = stub.LeaseKeepAlive()
                    await asyncio.sleep(0.01)
                    continue
                if ka is grpc.aio.EOF or ka.TTL <= 0:
                    self.out.count("keepalive_failed")
                for name, a, b in (("grant", t0, t1), ("keepalive", t1, t2), ("revoke", t2, t3)):
                    us = (b - a) // 1000
                    subs[name].record(us)
                    self.out.hist.record(us)
                self.out.ops += 3
                self.out.count("cycles")
        finally:
            stream.cancel()


class WatchWorkload(Workload):
    """Watch fan-out: `watchers` watchers of the w/ prefix over `watch_streams` streams,
    and (in the worker with `putter`) puts at `watch_rate` per second."""

    async def setup(self, channels: list[grpc.aio.Channel]) -> None:
        await super().setup(channels)
        spec = self.spec
        self.calls: list[Any] = []
        self.per_stream: list[int] = []
        streams = max(1, min(spec.watch_streams, spec.watchers)) if spec.watchers else 0
        for s in range(streams):
            n = spec.watchers // streams + (1 if s < spec.watchers % streams else 0)
            call = rpc_pb2_grpc.WatchStub(channels[s % len(channels)]).Watch()
            for _ in range(n):
                await call.write(rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(
                    key=WATCH_PREFIX, range_end=WATCH_RANGE_END)))
            created = 0
            while created < n:
                resp = await call.read()
                invariant(resp is not grpc.aio.EOF, "watch stream closed during setup")
                if resp.canceled:
                    raise RuntimeError(f"watch create refused: {resp.cancel_reason}")
                created += 1 if resp.created else 0
            self.calls.append(call)
            self.per_stream.append(n)
        self.out.counters["watchers"] = spec.watchers
        self.out.counters["watch_streams"] = streams
        self.out.counters["complete_watchers"] = 0
        self.out.counters["puts"] = 0

    async def run(self, deadline: float) -> None:
        tasks = [asyncio.ensure_future(self.receive(call, n, deadline + self.spec.drain_s))
                 for call, n in zip(self.calls, self.per_stream, strict=True)]
        if self.spec.putter:
            await self.put_loop(deadline)
        await asyncio.gather(*tasks)

    async def put_loop(self, deadline: float) -> None:
        stub = rpc_pb2_grpc.KVStub(self.channels[0])
        pad = b"\0" * max(0, self.spec.val_size - 8)
        inflight: set[asyncio.Future[Any]] = set()
        acked = 0

        async def put(key: bytes) -> None:
            nonlocal acked
            value = time.time_ns().to_bytes(8, "big") + pad
            try:
                await stub.Put(rpc_pb2.PutRequest(key=key, value=value))
                acked += 1
            except grpc.aio.AioRpcError as exc:
                self.out.error(exc)

        start = time.monotonic()
        interval = 1.0 / self.spec.watch_rate
        k = 0
        while True:
            due = start + k * interval
            if due >= deadline:
                break
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if len(inflight) >= PUTTER_INFLIGHT_MAX:
                self.out.count("putter_stalled")
                await asyncio.wait(inflight, return_when=asyncio.FIRST_COMPLETED)
            task = asyncio.ensure_future(put(WATCH_PREFIX + str(k % self.spec.key_space).encode()))
            inflight.add(task)
            task.add_done_callback(inflight.discard)
            k += 1
        if inflight:
            await asyncio.gather(*inflight)
        self.out.counters["puts"] = acked
        self.out.counters["puts_sent"] = k
        await stub.Put(rpc_pb2.PutRequest(key=WATCH_SENTINEL, value=b"end"))

    async def receive(self, call: Any, n: int, drain_deadline: float) -> None:
        done: set[int] = set()
        try:
            # One timeout for the whole stream: a wait_for per read costs a task per message,
            # and at 100,000 events/s that alone made the load process the bottleneck.
            await asyncio.wait_for(self._read_events(call, n, done),
                                   max(0.0, drain_deadline - time.monotonic()))
        except TimeoutError:
            pass
        except grpc.aio.AioRpcError as exc:
            self.out.error(exc)
        finally:
            self.out.counters["complete_watchers"] += len(done)
            call.cancel()

    async def _read_events(self, call: Any, n: int, done: set[int]) -> None:
        hist = self.out.hist
        now_ns = time.time_ns
        put = kv_pb2.Event.PUT
        while len(done) < n:
            resp = await call.read()
            if resp is grpc.aio.EOF:
                return
            if resp.canceled:
                self.out.count("canceled")
                return
            arrived = now_ns()
            for ev in resp.events:
                if ev.type != put:
                    continue
                kv = ev.kv
                if kv.key == WATCH_SENTINEL:
                    done.add(resp.watch_id)
                    continue
                hist.record((arrived - int.from_bytes(kv.value[:8], "big")) // 1000)
                self.out.ops += 1


FACTORIES: dict[str, type[Workload]] = {
    "put": PutWorkload,
    "range": RangeWorkload,
    "range-serializable": RangeSerializableWorkload,
    "txn-cas": TxnCasWorkload,
    "watch": WatchWorkload,
    "lease": LeaseWorkload,
}


def make_workload(spec: WorkerSpec) -> Workload:
    try:
        factory = FACTORIES[spec.workload]
    except KeyError:
        raise ValueError(f"unknown workload {spec.workload!r}") from None
    return factory(spec)
