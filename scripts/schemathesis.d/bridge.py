"""Forwards connections between a TCP address and a Unix socket, both ways on loopback.

`scripts/schemathesis` runs the server under test in its own network namespace, which has
nothing but a loopback interface: whatever a generated request names (a snapshot's check
targets, DNS names), the server cannot reach past it. Neo4j runs outside; this bridge carries
Bolt across through a Unix socket in the file system:

    bridge.py unix-to-tcp SOCKET HOST:PORT    # outside: SOCKET -> Neo4j
    bridge.py tcp-to-unix HOST:PORT SOCKET    # inside:  127.0.0.1:PORT -> SOCKET
"""

import asyncio
import os
import sys


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def main() -> None:
    mode, listen, target = sys.argv[1:4]

    async def connect():
        if mode == "unix-to-tcp":
            host, port = target.rsplit(":", 1)
            return await asyncio.open_connection(host, int(port))
        return await asyncio.open_unix_connection(target)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await connect()
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    if mode == "unix-to-tcp":
        if os.path.exists(listen):
            os.unlink(listen)
        server = await asyncio.start_unix_server(handle, path=listen)
    elif mode == "tcp-to-unix":
        host, port = listen.rsplit(":", 1)
        server = await asyncio.start_server(handle, host, int(port))
    else:
        sys.exit(f"unknown mode {mode!r}")
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
