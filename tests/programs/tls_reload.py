"""A TLS echo server whose reload hook loads the certificate files again (docs/lifecycle.md).

The certificate and key are ``cert.pem`` and ``key.pem`` in ``$TLS_DIR``.
"""

from __future__ import annotations

import asyncio
import os
import ssl

import aiodaemon

DIRECTORY = os.environ["TLS_DIR"]
tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)


def load_certificate() -> None:
    tls.load_cert_chain(os.path.join(DIRECTORY, "cert.pem"), os.path.join(DIRECTORY, "key.pem"))


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while line := await reader.readline():
        writer.write(line)
        await writer.drain()


@aiodaemon.on_startup
async def serve(ctx: aiodaemon.Context) -> None:
    load_certificate()
    await ctx.start_server(echo, "tls", ssl=tls)


@aiodaemon.on_reload
async def reload_certificate() -> None:
    load_certificate()  # the server goes on: new connections get the new certificate


async def main(ctx: aiodaemon.Context) -> None:
    await ctx.wait_stopping()
