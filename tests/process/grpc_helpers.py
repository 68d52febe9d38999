"""Small synchronous gRPC helpers for the process tests: stubs, status capture, a watch stream."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc

from api.proto import rpc_pb2, rpc_pb2_grpc


@dataclass
class Stubs:
    channel: grpc.Channel
    kv: Any
    watch: Any
    lease: Any
    cluster: Any
    maintenance: Any
    auth: Any

    @classmethod
    def connect(cls, endpoint: str) -> Stubs:
        channel = grpc.insecure_channel(
            endpoint, options=[("grpc.max_receive_message_length", -1),
                               ("grpc.max_send_message_length", -1)]
        )
        return cls(
            channel=channel,
            kv=rpc_pb2_grpc.KVStub(channel),
            watch=rpc_pb2_grpc.WatchStub(channel),
            lease=rpc_pb2_grpc.LeaseStub(channel),
            cluster=rpc_pb2_grpc.ClusterStub(channel),
            maintenance=rpc_pb2_grpc.MaintenanceStub(channel),
            auth=rpc_pb2_grpc.AuthStub(channel),
        )

    def close(self) -> None:
        self.channel.close()


def status_of(call: Callable[[], Any]) -> tuple[grpc.StatusCode, str]:
    """Run a call expected to fail; return its (code, details)."""
    try:
        call()
    except grpc.RpcError as exc:
        return exc.code(), exc.details()
    raise AssertionError("the call succeeded but an error was expected")


_END = object()


class WatchStream:
    """A Watch RPC driven from the test thread: send() requests, next() responses."""

    def __init__(self, stubs: Stubs, *, metadata: tuple[tuple[str, str], ...] = ()) -> None:
        self._requests: queue.Queue[Any] = queue.Queue()
        self._responses: queue.Queue[Any] = queue.Queue()
        self._reading = threading.Event()
        self._reading.set()
        self._call = stubs.watch.Watch(self._iter_requests(), metadata=metadata or None)
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _iter_requests(self) -> Iterator[rpc_pb2.WatchRequest]:
        while True:
            item = self._requests.get()
            if item is _END:
                return
            yield item

    def _pump(self) -> None:
        try:
            for response in self._call:
                self._responses.put(response)
                self._reading.wait()
        except grpc.RpcError as exc:
            self._responses.put(exc)

    def pause(self) -> None:
        """Stop reading from the stream (after the response in hand): a slow consumer."""
        self._reading.clear()

    def resume(self) -> None:
        self._reading.set()

    def send(self, request: rpc_pb2.WatchRequest) -> None:
        self._requests.put(request)

    def create(self, key: bytes, **kw: Any) -> None:
        self.send(rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=key, **kw)))

    def cancel(self, watch_id: int) -> None:
        self.send(rpc_pb2.WatchRequest(cancel_request=rpc_pb2.WatchCancelRequest(watch_id=watch_id)))

    def progress(self) -> None:
        self.send(rpc_pb2.WatchRequest(progress_request=rpc_pb2.WatchProgressRequest()))

    def next(self, timeout: float = 5.0) -> rpc_pb2.WatchResponse:
        item = self._responses.get(timeout=timeout)
        if isinstance(item, grpc.RpcError):
            raise item
        return item  # type: ignore[no-any-return]

    def nothing_within(self, timeout: float) -> bool:
        try:
            item = self._responses.get(timeout=timeout)
        except queue.Empty:
            return True
        self._responses.put(item)
        return False

    def events(self, n: int, timeout: float = 5.0) -> list[Any]:
        """Collect n events from event responses (skipping empty ones)."""
        out: list[Any] = []
        while len(out) < n:
            out.extend(self.next(timeout).events)
        return out

    def close(self) -> None:
        self._requests.put(_END)
        self._call.cancel()
