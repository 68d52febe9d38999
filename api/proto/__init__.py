"""Our .proto files with etcd 3.5's wire identity, and their committed Python stubs.

Import modules directly: `from api.proto import rpc_pb2, rpc_pb2_grpc` (etcdserverpb),
`kv_pb2` (mvccpb), `auth_pb2` (authpb), `v3lock_pb2`, `v3election_pb2`. Regenerate with
`python -m api.proto.generate` after editing a .proto (see generate.py for the layout).
"""
