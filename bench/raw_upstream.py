"""The bench upstreams' shared part: a minimal HTTP/1.1 request splitter on asyncio.Protocol, and the runner.

Each bench upstream subclasses RawUpstream and answers in on_request(path, body, stream) with pre-built bytes,
so the upstream costs as little CPU as possible and never limits what the bench measures.
"""

from __future__ import annotations

import asyncio
import sys


class RawUpstream(asyncio.Protocol):
    """Splits pipelined requests by Content-Length; subclasses answer each with on_request()."""

    def __init__(self) -> None:
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            head_end = self.buf.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buf[:head_end].lower()
            idx = head.find(b"content-length:")
            end = head.find(b"\r\n", idx)
            length = int(head[idx + 15 : end if end > 0 else None]) if idx >= 0 else 0
            total = head_end + 4 + length
            if len(self.buf) < total:
                return
            path = self.buf[: self.buf.find(b"\r\n")].split(b" ")[1]
            body = self.buf[head_end + 4 : total]
            self.buf = self.buf[total:]
            self.on_request(path, body, b'"stream":true' in body.replace(b" ", b""))

    def on_request(self, path: bytes, body: bytes, stream: bool) -> None:
        raise NotImplementedError


def main(protocol: type[RawUpstream], backlog: int = 1024) -> None:
    """`python bench/<upstream>.py PORT`: serve on 127.0.0.1:PORT until killed (uvloop when installed)."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass

    async def serve(port: int) -> None:
        server = await asyncio.get_running_loop().create_server(protocol, "127.0.0.1", port, backlog=backlog)
        async with server:
            await server.serve_forever()

    asyncio.run(serve(int(sys.argv[1])))
