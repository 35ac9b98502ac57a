"""A rediss:// URL's TLS options reach liveset's own Redis connections as they reach redis-py's.

The embedded Valkey has no TLS, so the test puts a TLS terminator in front of
it (asyncio, a certificate made for the test) and connects through that.
"""

from __future__ import annotations

import asyncio
import datetime
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis.asyncio as aioredis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from redis.exceptions import ConnectionError as RedisConnectionError

from realtime.live.script_line import ScriptLine
from realtime.live.subscriber import Subscriber


def _self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture
async def tls_redis(redis_url: str, tmp_path: Path) -> AsyncIterator[tuple[int, Path]]:
    """(port of a TLS terminator in front of the test Valkey, the certificate it presents)."""
    cert, key = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    backend = urlsplit(redis_url)

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def terminate(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        reader, writer = await asyncio.open_connection(backend.hostname, backend.port)
        await asyncio.gather(pipe(client_reader, writer), pipe(reader, client_writer))

    server = await asyncio.start_server(terminate, "127.0.0.1", 0, ssl=context)
    yield server.sockets[0].getsockname()[1], cert
    server.close()


async def test_the_script_line_and_subscriber_trust_the_ca_the_url_names(tls_redis: tuple[int, Path]) -> None:
    port, cert = tls_redis
    url = f"rediss://localhost:{port}/0?ssl_ca_certs={cert}"
    line = ScriptLine(url)
    try:
        assert await line.call(b"PING") == b"PONG"
    finally:
        await line.aclose()
    heard: list[bytes] = []
    subscriber = Subscriber(url, lambda channel, message: heard.append(message))
    running = asyncio.create_task(subscriber.run())
    try:
        await asyncio.wait_for(subscriber.ready(), 5)
        await subscriber.subscribe("tls-test")
        plain = aioredis.Redis.from_url(url)  # redis-py reads the same options the same way
        try:
            assert await plain.publish("tls-test", "over tls") == 1  # subscribed when subscribe returned
        finally:
            await plain.aclose()
        for _ in range(50):  # the message comes back through the TLS proxy: wait for it
            if heard:
                break
            await asyncio.sleep(0.05)
        assert heard == [b"over tls"]
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


async def test_without_the_ca_an_untrusted_certificate_is_refused(tls_redis: tuple[int, Path]) -> None:
    port, _ = tls_redis
    line = ScriptLine(f"rediss://localhost:{port}/0")
    with pytest.raises(RedisConnectionError, match="certificate verify failed"):
        await line.call(b"PING")
    relaxed = ScriptLine(f"rediss://localhost:{port}/0?ssl_cert_reqs=none")
    try:
        assert await relaxed.call(b"PING") == b"PONG"
    finally:
        await relaxed.aclose()
