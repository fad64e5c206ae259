"""TLS and SASL_SSL settings from the environment reach every Kafka client the same way.

No broker needed: a throwaway self-signed certificate (openssl CLI) in tmp_path, and a local TLS
server that demands a client certificate, show the SSL context really trusts the configured CA
and presents the configured client certificate.
"""
from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from faststream.kafka.security import parse_security
from faststream.security import BaseSecurity, SASLScram256, SASLScram512

from shared.kafka import broker_security, client_args, make_producer
from shared.settings import Settings

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost"],
        check=True, capture_output=True, timeout=30,
    )
    return cert, key


def tls_settings(cert: Path, key: Path, protocol: str, **overrides: object) -> Settings:
    files = {"kafka_ssl_cafile": str(cert), "kafka_ssl_certfile": str(cert), "kafka_ssl_keyfile": str(key)}
    return Settings(kafka_bootstrap_servers="kafka.example:9093", kafka_security_protocol=protocol,
                    **{**files, **overrides})


async def handshake_presents_client_certificate(client: ssl.SSLContext, cert: Path, key: Path) -> bool:
    """A TLS server that trusts only `cert` and requires a client certificate: True if `client` gets in."""
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(cert, key)
    server_side.load_verify_locations(cert)
    server_side.verify_mode = ssl.CERT_REQUIRED
    seen: list[object] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(writer.get_extra_info("peercert"))
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0, ssl=server_side)
    port = server.sockets[0].getsockname()[1]
    try:
        async with asyncio.timeout(10):
            _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client, server_hostname="localhost")
            await asyncio.sleep(0.1)
            writer.close()
    finally:
        server.close()
        await server.wait_closed()
    return bool(seen and seen[0])


async def test_sasl_ssl_settings_give_clients_scram_credentials_and_a_context_that_trusts_the_configured_ca(certificate):
    cert, key = certificate
    settings = tls_settings(cert, key, "sasl_ssl", kafka_sasl_mechanism="scram-sha-512",
                            kafka_sasl_username="helpdesk", kafka_sasl_password="s3cret")
    args = client_args(settings)
    assert args["security_protocol"] == "SASL_SSL"
    assert (args["sasl_mechanism"], args["sasl_plain_username"], args["sasl_plain_password"]) == (
        "SCRAM-SHA-512", "helpdesk", "s3cret")
    context = args["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert await handshake_presents_client_certificate(context, cert, key)
    make_producer(settings)  # aiokafka validates the combination when the client is built
    AIOKafkaAdminClient(**args)

    security = broker_security(settings)
    assert isinstance(security, SASLScram512) and security.use_ssl
    assert {k: v for k, v in parse_security(security).items() if k != "ssl_context"} == {
        "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "helpdesk", "sasl_plain_password": "s3cret"}


async def test_ssl_settings_without_sasl_give_clients_tls_with_a_client_certificate_and_no_credentials(certificate):
    cert, key = certificate
    settings = tls_settings(cert, key, "SSL")
    args = client_args(settings)
    assert args["security_protocol"] == "SSL"
    assert not {"sasl_mechanism", "sasl_plain_username", "sasl_plain_password"} & args.keys()
    assert await handshake_presents_client_certificate(args["ssl_context"], cert, key)
    make_producer(settings)

    security = broker_security(settings)
    assert type(security) is BaseSecurity and security.use_ssl
    assert parse_security(security)["security_protocol"] == "SSL"


async def test_a_context_without_the_brokers_ca_refuses_the_broker(certificate, tmp_path):
    """The CA file is what decides trust: a context built for another CA does not connect."""
    cert, key = certificate
    other = tmp_path / "other"
    other.mkdir()
    other_cert = other / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(other / "key.pem"), "-out", str(other_cert), "-days", "1",
                    "-subj", "/CN=other-ca"], check=True, capture_output=True, timeout=30)
    settings = tls_settings(cert, key, "SSL", kafka_ssl_cafile=str(other_cert))
    with pytest.raises(ssl.SSLError):
        await handshake_presents_client_certificate(client_args(settings)["ssl_context"], cert, key)


def test_sasl_plaintext_uses_no_tls_and_the_mechanism_named_in_env():
    settings = Settings(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_mechanism="SCRAM-SHA-256",
                        kafka_sasl_username="helpdesk", kafka_sasl_password="s3cret")
    args = client_args(settings)
    assert "ssl_context" not in args and args["sasl_mechanism"] == "SCRAM-SHA-256"
    security = broker_security(settings)
    assert isinstance(security, SASLScram256) and not security.use_ssl and security.ssl_context is None
    assert parse_security(security)["security_protocol"] == "SASL_PLAINTEXT"


def test_plaintext_is_the_default_and_adds_no_security_to_the_broker(monkeypatch):
    monkeypatch.delenv("KAFKA_SECURITY_PROTOCOL", raising=False)
    assert broker_security(Settings()) is None
    assert client_args(Settings())["security_protocol"] == "PLAINTEXT"
