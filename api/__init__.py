"""The kvstore server and everything on the wire: protos, servicers, node, client, CLI."""
