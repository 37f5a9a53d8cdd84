"""The store step's downloads over real sockets: the request reaches the address that was
checked even when the name later resolves elsewhere (DNS rebinding), TLS is verified for the
name while connecting to the address, and 429/5xx are retried inside the time budget.

Two local servers stand for "the checked address" (127.0.0.1) and "where a second lookup would
lead" (127.0.0.2, same port); a fake resolver answers the first lookup of the name with the
first and every later one with the second.
"""

from __future__ import annotations

import datetime
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from moto import mock_aws

from imagegateway.adapters.downloads import DownloadClient
from imagegateway.adapters.image_store import ImageStore
from imagegateway.domain.errors import ImageDownloadError
from imagegateway.platform.settings import Settings
from imagegateway.platform.time_budget import invocation_budget

BUCKET = "images-bucket"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
LOCAL = Settings(
    jobs_table_name="jobs",
    images_bucket_name=BUCKET,
    allow_insecure_downloads=True,  # the local stack's setting: http and any port on loopback
    download_allowed_hosts=("images.test", "other.test"),
)
_real_getaddrinfo = socket.getaddrinfo


class Server(ThreadingHTTPServer):
    """Answers every GET with `answers` in turn (then the last one), keeping what it was sent."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], answers: list[tuple[int, dict[str, str]]]):
        super().__init__(address, Handler)
        self.answers = answers
        self.seen: list[dict[str, Any]] = []
        self.server_names: list[str | None] = []


class Handler(BaseHTTPRequestHandler):
    server: Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.server.seen.append({"path": self.path, "host": self.headers.get("Host")})
        answers = self.server.answers
        code, headers = answers[min(len(self.server.seen), len(answers)) - 1]
        body = PNG if code == 200 else b"no"
        self.send_response(code)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


def serve(
    host: str, port: int = 0, answers: list[tuple[int, dict[str, str]]] | None = None
) -> Server:
    server = Server((host, port), answers or [(200, {"Content-Type": "image/png"})])
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    return server


@pytest.fixture
def servers() -> Iterator[tuple[Server, Server]]:
    """The checked address's server and, on the same port, the rebinding target's."""
    checked = serve("127.0.0.1")
    try:
        rebound = serve("127.0.0.2", checked.server_address[1])
    except OSError:
        checked.shutdown()
        pytest.skip("127.0.0.2 is not a usable loopback address here")
    yield checked, rebound
    for server in (checked, rebound):
        server.shutdown()
        server.server_close()


@pytest.fixture
def rebinding_dns(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """images.test and other.test: 127.0.0.1 the first time each is looked up, then 127.0.0.2.
    Returns the names looked up, in order."""
    lookups: list[str] = []

    def getaddrinfo(host: str, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in ("images.test", "other.test"):
            lookups.append(host)
            address = "127.0.0.1" if lookups.count(host) == 1 else "127.0.0.2"
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port or 0))]
        return _real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return lookups


@pytest.fixture
def bucket() -> Iterator[str]:
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
        yield BUCKET


def stored_body(key: str) -> bytes:
    body: bytes = (
        boto3.client("s3", region_name="us-east-1")
        .get_object(Bucket=BUCKET, Key=key)["Body"]
        .read()
    )
    return body


def test_the_request_goes_to_the_checked_address_not_where_the_name_rebinds(
    servers: tuple[Server, Server], rebinding_dns: list[str], bucket: str
) -> None:
    checked, rebound = servers
    port = checked.server_address[1]
    # When an image on the rebinding name is copied
    image = ImageStore(LOCAL).copy_one("job-1", 0, f"http://images.test:{port}/jobs/x/0.png?v=2")
    # Then the name was looked up once, and the request reached the server at that address,
    # with the name in its Host header; the server a second lookup leads to saw nothing
    assert rebinding_dns == ["images.test"]
    assert checked.seen == [{"path": "/jobs/x/0.png?v=2", "host": f"images.test:{port}"}]
    assert rebound.seen == []
    assert stored_body(image.key) == PNG


def test_every_redirect_hop_is_resolved_once_and_pinned(
    servers: tuple[Server, Server], rebinding_dns: list[str], bucket: str
) -> None:
    checked, rebound = servers
    port = checked.server_address[1]
    checked.answers = [(302, {"Location": f"http://other.test:{port}/final.png"}), (200, {})]
    # When the image redirects to another allowed name
    ImageStore(LOCAL).copy_one("job-1", 0, f"http://images.test:{port}/0.png")
    # Then each name was looked up once, each request went where its own lookup said
    assert rebinding_dns == ["images.test", "other.test"]
    assert [seen["host"] for seen in checked.seen] == [
        f"images.test:{port}",
        f"other.test:{port}",
    ]
    assert rebound.seen == []


# --- TLS: the certificate is checked for the name, while the socket goes to the address --------


def _certificates(directory: Path) -> tuple[Path, ssl.SSLContext, list[str | None]]:
    """A test CA (its PEM path) and a server context presenting a certificate for images.test
    signed by it; the context records the SNI names it is offered."""
    now = datetime.datetime.now(datetime.UTC)

    def build(subject: str, issuer_key: Any, key: Any, issuer: str, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            # Python 3.13 verifies strictly (VERIFY_X509_STRICT): key identifiers are required.
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), False
            )
        )
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False
            )
        else:
            builder = builder.add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = build("test CA", ca_key, ca_key, "test CA", ca=True)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = build("images.test", ca_key, leaf_key, "test CA", ca=False)
    ca_path = directory / "ca.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    chain = directory / "server.pem"
    chain.write_bytes(
        leaf.public_bytes(serialization.Encoding.PEM)
        + leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(chain)
    offered: list[str | None] = []
    context.sni_callback = lambda sock, name, ctx: offered.append(name)  # type: ignore[assignment,func-returns-value]
    return ca_path, context, offered


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[Server, Path, list[str | None]]]:
    ca_path, context, offered = _certificates(tmp_path)
    server = Server(("127.0.0.1", 0), [(200, {"Content-Type": "image/png"})])
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    yield server, ca_path, offered
    server.shutdown()
    server.server_close()


def test_tls_is_verified_for_the_name_while_connecting_to_the_checked_address(
    tls_server: tuple[Server, Path, list[str | None]], rebinding_dns: list[str], bucket: str
) -> None:
    server, ca_path, offered = tls_server
    port = server.server_address[1]
    store = ImageStore(LOCAL, downloads=DownloadClient(LOCAL, ca_certs=str(ca_path)))
    # When an https image is copied from the name its certificate is for
    image = store.copy_one("job-1", 0, f"https://images.test:{port}/0.png")
    # Then the handshake offered the name (SNI), the request named it, and the image is stored
    assert offered == ["images.test"]
    assert server.seen == [{"path": "/0.png", "host": f"images.test:{port}"}]
    assert stored_body(image.key) == PNG


def test_a_certificate_for_another_name_is_refused(
    tls_server: tuple[Server, Path, list[str | None]], rebinding_dns: list[str], bucket: str
) -> None:
    server, ca_path, _ = tls_server
    port = server.server_address[1]
    store = ImageStore(LOCAL, downloads=DownloadClient(LOCAL, ca_certs=str(ca_path)))
    # When other.test, served from the same address with images.test's certificate, is fetched
    with pytest.raises(ImageDownloadError, match="image 0: "):
        store.copy_one("job-1", 0, f"https://other.test:{port}/0.png")
    # Then no request was sent over that connection
    assert server.seen == []


# --- retries ---------------------------------------------------------------------------------


def test_a_5xx_then_429_are_retried_and_the_image_stored(
    servers: tuple[Server, Server], rebinding_dns: list[str], bucket: str
) -> None:
    checked, _ = servers
    port = checked.server_address[1]
    checked.answers = [(503, {}), (429, {"Retry-After": "0"}), (200, {})]
    image = ImageStore(LOCAL).copy_one("job-1", 0, f"http://images.test:{port}/0.png")
    assert len(checked.seen) == 3
    assert stored_body(image.key) == PNG
    # and every retry went to the checked address: the name was looked up once
    assert rebinding_dns == ["images.test"]


def test_a_long_retry_after_is_not_waited_inside_the_function(
    servers: tuple[Server, Server], rebinding_dns: list[str], bucket: str
) -> None:
    checked, _ = servers
    port = checked.server_address[1]
    checked.answers = [(429, {"Retry-After": "3600"}), (200, {})]
    with pytest.raises(ImageDownloadError, match="image 0: the upstream answered 429"):
        ImageStore(LOCAL).copy_one("job-1", 0, f"http://images.test:{port}/0.png")
    assert len(checked.seen) == 1


class Context:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def get_remaining_time_in_millis(self) -> int:
        return int(self.seconds * 1000)


def test_no_retry_is_started_that_would_not_fit_in_the_invocation(
    servers: tuple[Server, Server], rebinding_dns: list[str], bucket: str
) -> None:
    checked, _ = servers
    port = checked.server_address[1]
    checked.answers = [(503, {}), (200, {})]
    # Given one attempt may take 3 s (1 s connect + 2 s read) and 2.5 s are left
    settings = LOCAL.model_copy(
        update={"upstream_connect_timeout_seconds": 1.0, "upstream_read_timeout_seconds": 2.0}
    )
    with (
        invocation_budget(Context(4.5), margin=2.0),
        pytest.raises(ImageDownloadError, match="answered 503"),
    ):
        ImageStore(settings).copy_one("job-1", 0, f"http://images.test:{port}/0.png")
    # Then the 503 is the answer: no second attempt was started
    assert len(checked.seen) == 1
