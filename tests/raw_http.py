"""Raw HTTP/1.1 over a loopback socket, for bytes a real client library refuses to send or a server to write
(header values that are not UTF-8): a request helper and a hostile upstream that answers canned bytes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


async def raw_request(
    port: int, path: str, headers: list[tuple[bytes, bytes]], body: bytes = b"", method: bytes = b"POST"
) -> tuple[int, dict[str, bytes], bytes]:
    """Send one request with these exact header bytes; (status, lower-cased headers, body). Bounded: 20 s."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        head = [method + b" " + path.encode() + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close"]
        head += [name + b": " + value for name, value in headers]
        head.append(b"Content-Length: " + str(len(body)).encode())
        writer.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 20)
    finally:
        writer.close()
    head_bytes, _, rest = raw.partition(b"\r\n\r\n")
    lines = head_bytes.split(b"\r\n")
    status = int(lines[0].split()[1])
    out: dict[str, bytes] = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        out[name.decode().strip().lower()] = value.strip()
    if out.get("transfer-encoding") == b"chunked":
        rest = _unchunk(rest)
    return status, out, rest


def _unchunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2 :]
    return out


class HostileUpstream:
    """A loopback server that reads one HTTP request per connection and answers `respond(request_body)`:
    raw response bytes (status line, headers, body) written exactly as given, then the connection closes."""

    def __init__(self, respond: Callable[[bytes], bytes]) -> None:
        self.respond = respond
        self.server: Any = None
        self.port = 0
        self.requests = 0

    async def __aenter__(self) -> HostileUpstream:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            body = await asyncio.wait_for(reader.readexactly(length), 10)
            self.requests += 1
            writer.write(self.respond(body))
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def http_response(status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> bytes:
    head = [
        f"HTTP/1.1 {status} X".encode(),
        b"Connection: close",
        b"Content-Length: " + str(len(body)).encode(),
    ]
    head += [name + b": " + value for name, value in headers]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def sse_response(events: list[bytes], headers: list[tuple[bytes, bytes]] = ()) -> bytes:  # type: ignore[assignment]
    head = [b"HTTP/1.1 200 OK", b"Connection: close", b"Content-Type: text/event-stream"]
    head += [name + b": " + value for name, value in headers]
    return b"\r\n".join(head) + b"\r\n\r\n" + b"".join(events)
