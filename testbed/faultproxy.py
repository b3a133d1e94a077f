"""A TCP proxy in front of a real storage server that misbehaves on demand, for tests of what cdnstore
does when the network between it and a storage server fails:

- `stall`: new connections are accepted and then ignored, open ones go silent (a server that hangs);
- `cut_after`: a connection is reset (RST) once that many bytes have passed through it, both directions
  counted; `cut_every` picks only every k-th connection, `max_cuts` stops after so many resets;
- `delay`: every chunk waits that many seconds before it is passed on (a slow or congested link);
- `flip_at`: the byte at that offset of an answer (what the server sends back, headers included) reaches
  the client with its bits inverted (a server or link that corrupts data); `max_flips` stops after so many.

Modes may be switched at any time; they apply to connections already open as well as to new ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit

_CHUNK = 1 << 16


@dataclass
class _Connection:
    number: int  # 1, 2, ... in the order they were accepted
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    passed: int = 0  # bytes forwarded, both directions
    answered: int = 0  # bytes forwarded from the server to the client
    cut: bool = False
    slowed: bool = False


def _reset(writer: asyncio.StreamWriter | None) -> None:
    """Close abruptly: SO_LINGER 0 makes the kernel send RST instead of FIN, and nothing buffered is sent."""
    if writer is None or writer.transport.is_closing():
        return
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    """Forwards TCP from a loopback port of its own to `upstream` (an http:// URL)."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.stall = False
        self.cut_after: int | None = None
        self.cut_every = 1
        self.max_cuts: int | None = None
        self.delay = 0.0
        self.flip_at: int | None = None
        self.max_flips: int | None = None
        self.flips = 0  # bytes corrupted so far
        self.connections = 0  # accepted so far
        self.stalled = 0  # requests left unanswered by `stall` so far (new connections or open ones)
        self.cuts = 0  # connections reset so far
        self.slowed = 0  # connections that had a chunk delayed so far
        self.passed = 0  # bytes forwarded so far, both directions, all connections
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    def heal(self) -> None:
        """Back to a plain, fast, reliable proxy."""
        self.stall, self.cut_after, self.cut_every, self.max_cuts, self.delay = False, None, 1, None, 0.0
        self.flip_at, self.max_flips = None, None

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        self.connections += 1
        conn = _Connection(self.connections, writer)
        try:
            if self.stall:
                self.stalled += 1
                await asyncio.sleep(3600)  # the fault itself: read nothing, answer nothing
            up_reader, conn.upstream = await asyncio.open_connection(self.host, self.port)
            await asyncio.gather(
                self._pipe(conn, reader, conn.upstream), self._pipe(conn, up_reader, writer, answer=True)
            )
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            for stream in (writer, conn.upstream):
                if stream is not None:
                    stream.close()
                    with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                        await stream.wait_closed()
            self.tasks.discard(task)

    def _doomed(self, conn: _Connection) -> bool:
        """Whether this connection is one to cut (once it has carried `cut_after` bytes)."""
        return conn.number % self.cut_every == 0 and (self.max_cuts is None or self.cuts < self.max_cuts)

    async def _pipe(
        self, conn: _Connection, src: asyncio.StreamReader, dst: asyncio.StreamWriter, answer: bool = False
    ) -> None:
        with contextlib.suppress(ConnectionError):
            while not conn.cut and (chunk := await src.read(_CHUNK)):
                if self.stall:  # connections already open go silent too (clients keep them alive)
                    self.stalled += 1
                    await asyncio.sleep(3600)
                if self.delay:
                    if not conn.slowed:
                        conn.slowed = True
                        self.slowed += 1
                    await asyncio.sleep(self.delay)  # the fault itself: a slow link
                if conn.cut:  # the other direction cut it meanwhile
                    break
                room = None if self.cut_after is None else max(0, self.cut_after - conn.passed)
                if room is not None and len(chunk) >= room and self._doomed(conn):
                    conn.cut = True  # decided here, before any await: the other direction does not cut it again
                    self.cuts += 1
                    dst.write(chunk[:room])  # pass `cut_after` bytes, then reset both sides
                    self._count(conn, room)
                    with contextlib.suppress(ConnectionError):
                        await dst.drain()
                    _reset(conn.client)
                    _reset(conn.upstream)
                    break
                if answer:
                    chunk = self._flipped(conn, chunk)
                dst.write(chunk)
                self._count(conn, len(chunk))
                await dst.drain()
        if not conn.cut:
            dst.close()

    def _flipped(self, conn: _Connection, chunk: bytes) -> bytes:
        """The chunk of an answer as it goes on: with the byte at `flip_at` inverted when it is in it."""
        start, conn.answered = conn.answered, conn.answered + len(chunk)
        at = self.flip_at
        if (
            at is None
            or not start <= at < conn.answered
            or (self.max_flips is not None and self.flips >= self.max_flips)
        ):
            return chunk
        self.flips += 1
        i = at - start
        return chunk[:i] + bytes([chunk[i] ^ 0xFF]) + chunk[i + 1 :]

    def _count(self, conn: _Connection, size: int) -> None:
        conn.passed += size
        self.passed += size


@contextlib.asynccontextmanager
async def fault_proxy(upstream: str) -> AsyncIterator[FaultProxy]:
    """A FaultProxy in front of `upstream`, stopped (its connections closed) on the way out."""
    made = FaultProxy(upstream)
    await made.start()
    try:
        yield made
    finally:
        await made.stop()
