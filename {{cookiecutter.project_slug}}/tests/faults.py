"""A TCP proxy on loopback in front of a real server, to take it away and bring it back.

`cut()` drops every open connection and refuses new ones, which is what a client
sees of a server that restarts or goes down; `stall()` drops them too but then takes
new connections and never answers, what a client sees of a server that hangs or of a
network that loses packets: it waits for its timeout. `freeze()` is a stall that keeps
the open connections, silent: a server or network that hangs mid-conversation (a
paused process, a link that goes dead). `restore()` accepts and relays connections
again. The server itself is shared with other tests and never touched.
"""

import asyncio
import contextlib


class FaultProxy:
    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self.stalling = False
        # Cleared while frozen: the open connections relay nothing.
        self._flowing = asyncio.Event()
        self._flowing.set()
        # Connections taken while stalled: how often a client tried the server.
        self.stalled = 0

    async def start(self) -> "FaultProxy":
        self._server = await asyncio.start_server(
            self._accept, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        await self._drop()

    async def stall(self) -> None:
        self.stalling = True
        await self._drop()
        if self._server is None:
            await self.start()

    async def freeze(self) -> None:
        self.stalling = True
        self._flowing.clear()
        if self._server is None:
            await self.start()

    async def restore(self) -> None:
        if self.stalling:
            self.stalling = False
            await self._drop()
            self._flowing.set()
        if self._server is None:
            await self.start()

    async def _drop(self) -> None:
        for pipe in list(self._pipes):
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def close(self) -> None:
        await self.cut()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._pipes.add(task)
        if self.stalling:
            self.stalled += 1
            try:
                with contextlib.suppress(ConnectionError):
                    while await reader.read(65536):
                        pass  # read and never answer
            finally:
                writer.transport.abort()
                self._pipes.discard(task)
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            self._pipes.discard(task)
            return
        try:
            await asyncio.gather(
                self._copy(reader, upstream_writer), self._copy(upstream_reader, writer)
            )
        finally:
            for stream in (writer, upstream_writer):
                stream.transport.abort()
            self._pipes.discard(task)

    async def _copy(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await source.read(65536):
                await self._flowing.wait()
                sink.write(data)
                await sink.drain()
        sink.transport.abort()
