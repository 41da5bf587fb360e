"""The "ceiling": the fastest an asyncio server on uvloop can answer, with no HTTP parsing.

A bare asyncio.Protocol counts the request terminators (b"\\r\\n\\r\\n") in what it
reads and writes one fixed response per terminator. It only suits GET requests
without a body (scenarios a, b and e). For ``GET /stream`` (scenario e) the fixed
response is the apps' whole 1 MiB chunked body, prebuilt, sent in one write. If the
request carries "Connection: close" (a plain substring check, not a parse) it
answers with "Connection: close" and closes, so wrk opens a new connection per
request as it does with real servers.

    python bench/ceiling.py --host 127.0.0.1 --port 8000
"""

import argparse
import asyncio
import signal

import uvloop

BODY = b"Hello, world!"
HEAD = b"HTTP/1.1 200 OK\r\nServer: ceiling\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n"
KEEP_ALIVE_RESPONSE = HEAD + b"\r\n" + BODY
CLOSE_RESPONSE = HEAD + b"Connection: close\r\n\r\n" + BODY
TERMINATOR = b"\r\n\r\n"
CHUNK = b"x" * (16 * 1024)  # as bench/apps/common.py STREAM_CHUNK, 64 of them
STREAM_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: ceiling\r\nContent-Type: application/octet-stream\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n" + (b"4000\r\n" + CHUNK + b"\r\n") * 64 + b"0\r\n\r\n"
)


class Ceiling(asyncio.Protocol):
    __slots__ = ("tail", "transport")

    def connection_made(self, transport):
        self.transport = transport
        self.tail = b""

    def data_received(self, data):
        buf = self.tail + data if self.tail else data
        count = buf.count(TERMINATOR)
        # keep the last 3 bytes so a terminator split across two reads is still seen
        self.tail = buf[-3:]
        if not count:
            return
        if b"GET /stream" in buf:
            self.transport.write(STREAM_RESPONSE * count)
        elif b"onnection: close" in buf:
            self.transport.write(CLOSE_RESPONSE)
            self.transport.close()
        else:
            self.transport.write(KEEP_ALIVE_RESPONSE * count)


async def main(host, port):
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set_result, None)
    server = await loop.create_server(Ceiling, host, port, backlog=2048, reuse_address=True)
    async with server:
        await stop


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    uvloop.run(main(args.host, args.port))
