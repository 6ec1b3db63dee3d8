#!/usr/bin/env python3
"""Makes local servers reachable from Docker containers: forwards TCP from a free port on
--listen (the Docker bridge address, e.g. 172.17.0.1) to each http://127.0.0.1:<port> URL given,
byte for byte (SigV4 signatures stay valid: they cover the Host header the client sends).

    tcp-forward.py --listen 172.17.0.1 --ready urls.txt http://127.0.0.1:8000 http://127.0.0.1:9000

Writes the reachable URLs to --ready, one a line in the order given, once listening; serves until
killed. The local servers themselves stay on 127.0.0.1.
"""

import argparse
import asyncio
import os
from urllib.parse import urlsplit


async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", required=True)
    parser.add_argument("--ready", required=True)
    parser.add_argument("urls", nargs="+")
    args = parser.parse_args()

    reachable = []
    for url in args.urls:
        target = urlsplit(url)

        async def forward(reader, writer, host=target.hostname, port=target.port):
            try:
                upstream_reader, upstream_writer = await asyncio.open_connection(host, port)
            except OSError:
                writer.close()
                return
            await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

        server = await asyncio.start_server(forward, args.listen, 0)
        port = server.sockets[0].getsockname()[1]
        reachable.append(f"{target.scheme}://{args.listen}:{port}")
    tmp = args.ready + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(reachable) + "\n")
    os.replace(tmp, args.ready)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
