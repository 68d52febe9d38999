"""kvstore: etcd's MVCC key-value state machine on LMDB, as a plain synchronous library.

Modules: `store` (Store: the LMDB environment, apply_batch, reads, snapshots, maintenance),
`apply` (one batch = one write txn), `view` (MVCC reads), `txn` (request checks, compares),
`lease` (lease state), `compaction` (batched physical compaction, hashes), `revision` and
`codec` (on-disk layouts), `types` (etcd-shaped requests, responses, events), `errors`
(etcd's exact messages), `watch` (the watch hub), `failpoint` (named crash points).
"""

from kvstore.errors import KvError
from kvstore.store import Store

__all__ = ["KvError", "Store"]
