"""A lean HTTP/2 gRPC server for the client port (asyncio/uvloop protocols, no grpcio).

grpc.aio spends 350-400 us of server CPU on every unary call in grpcio 1.85 (an echo with
nothing behind it) and a loop round trip per streamed message; framing HTTP/2 by hand on
an asyncio Protocol does the same echo in about 90 us. The servicers and their generic
handler registrations (api/grpc/, api/server/grpc_server.py) are shared with the grpc.aio
front: this package only replaces the transport.

    frames.py      frame layout, constants, encoders
    headers.py     request header decoding (hpack) and response header blocks
    connection.py  one client connection: frames in, streams, flow control, frames out
    call.py        one RPC on a stream: gRPC messages, the servicer context, status
    server.py      listeners, handler lookup, graceful stop
"""
