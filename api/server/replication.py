"""The peer side of a member: the transport, snapshots sent to followers, and snapshot
bodies received from the leader.

Messages of a Ready go out through `send()` once that Ready is durable (the node calls it
in step 3 of the Ready contract, or earlier for a leader: raft/ready.py), commit-only
MsgApps after a short hold (commit_hold.py). A MsgSnap is special: its body is a bundle file
(snapshot_bundle.py) built on the read pool from the store and streamed by the transport;
the file is deleted when the transport reports the outcome, which goes back to raft as
`report_snapshot`. A bundle that arrives is parked under its (index, term) and the MsgSnap
is stepped into raft; if raft accepts it, the next Ready carries the snapshot and the node
installs the parked bundle (`take_incoming`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Coroutine, Mapping, Sequence
from concurrent.futures import Executor
from typing import Any

from api.server.commit_hold import CommitHold
from api.server.transport import Transport
from raft import Message, MessageType

log = logging.getLogger("kvstore.replication")

INCOMING_SNAPSHOTS_MAX = 4


class Replication:
    def __init__(
        self,
        *,
        member_id: int,
        cluster_id: int,
        listen: str,
        peers: Mapping[int, Sequence[str]],
        snapshot_dir: str,
        partition_file: str | None,
        step: Callable[[Message], None],
        report_unreachable: Callable[[int], None],
        report_snapshot: Callable[[int, bool], None],
        make_bundle: Callable[[str], None],
        pool: Executor,
        members_provider: Callable[[], tuple[int, list[list[Any]]]] | None = None,
        on_removed: Callable[[], None] | None = None,
    ) -> None:
        os.makedirs(snapshot_dir, exist_ok=True)
        self._snapshot_dir = snapshot_dir
        self._step = step
        self._report_snapshot = report_snapshot
        self._make_bundle = make_bundle
        self._pool = pool
        self._outgoing: dict[int, str] = {}
        self._incoming: dict[tuple[int, int], str] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._known = {pid: tuple(urls) for pid, urls in peers.items() if pid != member_id}
        self.transport = Transport(
            member_id=member_id,
            cluster_id=cluster_id,
            listen=listen,
            peers=peers,
            on_message=step,
            on_unreachable=report_unreachable,
            on_snapshot_status=self._on_snapshot_status,
            on_snapshot=self._on_snapshot,
            snapshot_dir=snapshot_dir,
            partition_file=partition_file,
            members_provider=members_provider,
            on_removed=on_removed,
        )
        self._hold = CommitHold(self.transport.send)

    async def start(self) -> None:
        for name in os.listdir(self._snapshot_dir):  # leftovers of a crash
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(self._snapshot_dir, name))
        await self.transport.start()

    async def stop(self) -> None:
        self._hold.close()
        for task in list(self._tasks):
            task.cancel()
        await self.transport.stop()
        for path in [*self._outgoing.values(), *self._incoming.values()]:
            with contextlib.suppress(OSError):
                os.unlink(path)

    def set_peers(self, peers: Mapping[int, Sequence[str]], *, me: int) -> None:
        """Follow the applied membership: add, update and remove peer streams."""
        current = set(self._known)
        for peer_id, urls in peers.items():
            if peer_id == me:
                continue
            if peer_id in current:
                if self._known[peer_id] != tuple(urls):
                    self.transport.update_peer(peer_id, urls)
            else:
                self.transport.add_peer(peer_id, urls)
            self._known[peer_id] = tuple(urls)
        for peer_id in current - set(peers):
            self.transport.remove_peer(peer_id)
            del self._known[peer_id]

    def send(self, messages: Sequence[Message]) -> None:
        normal = [m for m in messages if m.type is not MessageType.SNAP]
        if normal:
            self._hold.send(normal)
        for m in messages:
            if m.type is MessageType.SNAP:
                self._spawn(self._send_snapshot(m))

    async def _send_snapshot(self, message: Message) -> None:
        if message.to in self._outgoing:
            self._report_snapshot(message.to, False)
            return
        path = os.path.join(self._snapshot_dir, f"out-{message.to:016x}.bundle")
        self._outgoing[message.to] = path
        try:
            await asyncio.get_running_loop().run_in_executor(self._pool, self._make_bundle, path)
        except Exception:
            log.exception("cannot build a snapshot for %x", message.to)
            self._outgoing.pop(message.to, None)
            with contextlib.suppress(OSError):
                os.unlink(path)
            self._report_snapshot(message.to, False)
            return
        index = message.snapshot.metadata.index if message.snapshot is not None else 0
        log.info("sending snapshot at index %d to %x", index, message.to)
        self.transport.send_snapshot(message, path)

    def _on_snapshot_status(self, peer_id: int, ok: bool) -> None:
        path = self._outgoing.pop(peer_id, None)
        if path is not None:
            with contextlib.suppress(OSError):
                os.unlink(path)
        self._report_snapshot(peer_id, ok)

    def _on_snapshot(self, message: Message, path: str) -> None:
        snap = message.snapshot
        if snap is None:
            raise ValueError("MsgSnap without snapshot metadata")
        key = (snap.metadata.index, snap.metadata.term)
        while len(self._incoming) >= INCOMING_SNAPSHOTS_MAX:
            _old_key, old = self._incoming.popitem()
            with contextlib.suppress(OSError):
                os.unlink(old)
        self._incoming[key] = path
        self._step(message)

    def take_incoming(self, index: int, term: int) -> str | None:
        path = self._incoming.pop((index, term), None)
        for stale in [k for k in self._incoming if k[0] <= index]:
            with contextlib.suppress(OSError):
                os.unlink(self._incoming.pop(stale))
        return path

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
