"""The store step connects to the address it checked: one resolution per hop, the connection
pinned to the checked IP, TLS (SNI and certificate) and the Host header still for the name.

Sockets are disabled here: name resolution and the connection are faked at the points urllib3
calls them, so what would have gone on the wire is observed without any network.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest
import urllib3.connection
import urllib3.util.connection
from pytest_socket import SocketBlockedError

from imagegateway.adapters.image_store import ImageStore
from imagegateway.domain.errors import ImageRejectedError
from imagegateway.platform.settings import Settings

DEPLOYED = Settings(jobs_table_name="jobs", images_bucket_name="images")
NAME = "cdn.imagepipeline.io"
CHECKED = "93.184.216.34"
URL = f"https://{NAME}/jobs/x/0.png"

AddrInfo = list[tuple[Any, ...]]


@pytest.fixture(autouse=True)
def _environment(settings_env: None) -> None:
    """Settings in the environment too, for anything that reads them from there."""


class Resolver:
    """A fake socket.getaddrinfo: names from a table, IP literals as themselves; every call kept.
    `answers` maps a name to the addresses it resolves to, one list per successive lookup (the
    last one repeats), so a rebinding name can answer differently the second time."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, Any]] = []

    def __call__(self, host: str, port: Any, *args: Any, **kwargs: Any) -> AddrInfo:
        self.calls.append((host, port))
        if host in self.answers:
            seen = sum(1 for called, _ in self.calls if called == host)
            choices = self.answers[host]
            addresses = choices[min(seen, len(choices)) - 1]
        else:
            addresses = [host]
        return [
            (
                socket.AF_INET6 if ":" in address else socket.AF_INET,
                socket.SOCK_STREAM,
                socket.IPPROTO_TCP,
                "",
                (address, port or 0),
            )
            for address in addresses
        ]

    def lookups_of(self, host: str) -> int:
        return sum(1 for called, _ in self.calls if called == host)


@pytest.fixture
def rebinding(monkeypatch: pytest.MonkeyPatch) -> Resolver:
    """NAME answers a public address first, then the metadata service: DNS rebinding."""
    resolver = Resolver({NAME: [[CHECKED], ["169.254.169.254"]]})
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    return resolver


class Reached(Exception):
    """Raised by the fakes at the point a real connection would touch the network."""

    def __init__(self, **seen: Any) -> None:
        super().__init__(seen)
        self.seen = seen


@pytest.mark.filterwarnings("ignore:A test tried to use socket.socket")
def test_the_name_is_resolved_once_and_the_socket_goes_to_the_checked_address(
    rebinding: Resolver,
) -> None:
    # Given a name that resolves to a public address, then (rebinding) to an internal one
    # When the store step opens the image (sockets are disabled: opening the socket stops it)
    with pytest.raises(SocketBlockedError):
        ImageStore(DEPLOYED).copy_one("job-1", 0, URL)
    # Then the name was looked up once, for the check, and the connection was made to the
    # address that check saw (urllib3's own getaddrinfo gets the IP literal, not the name)
    assert rebinding.lookups_of(NAME) == 1, rebinding.calls
    assert rebinding.calls[-1] == (CHECKED, 443)


def test_tls_goes_to_the_checked_address_with_sni_and_certificate_for_the_name(
    rebinding: Resolver, monkeypatch: pytest.MonkeyPatch
) -> None:
    connected: list[tuple[str, int]] = []

    class StandIn:
        """A socket the TLS wrap below never uses."""

        def close(self) -> None:
            pass

    def create_connection(address: tuple[str, int], *args: Any, **kwargs: Any) -> StandIn:
        connected.append(address)
        return StandIn()

    def wrap(**kwargs: Any) -> None:
        raise Reached(**kwargs)

    monkeypatch.setattr(urllib3.util.connection, "create_connection", create_connection)
    monkeypatch.setattr(urllib3.connection, "_ssl_wrap_socket_and_match_hostname", wrap)
    # When the store step opens an https image
    with pytest.raises(Reached) as reached:
        ImageStore(DEPLOYED).copy_one("job-1", 0, URL)
    # Then the TCP connection goes to the checked IP on the URL's port
    assert connected == [(CHECKED, 443)]
    # And TLS is for the name: SNI and the certificate check, with verification on
    tls = reached.value.seen
    assert tls["server_hostname"] == NAME
    assert tls["assert_hostname"] == NAME
    assert tls["cert_reqs"] == "CERT_REQUIRED"
    assert rebinding.lookups_of(NAME) == 1


def test_the_request_names_the_host_in_its_host_header(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given the local stack's settings (plain http allowed) and a name on a local port
    local = DEPLOYED.model_copy(
        update={"allow_insecure_downloads": True, "download_allowed_hosts": ("images.test",)}
    )
    monkeypatch.setattr(socket, "getaddrinfo", Resolver({"images.test": [["127.0.0.9"]]}))
    sent: list[bytes] = []
    connected: list[tuple[str, int]] = []

    class FakeSocket:
        """Enough of a socket for http.client: records what is sent, answers one PNG."""

        def __init__(self) -> None:
            body = b"\x89PNG\r\n\x1a\n" + b"\x00" * 8
            self.answer = (
                b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )

        def sendall(self, data: bytes) -> None:
            sent.append(bytes(data))

        def makefile(self, mode: str, *args: Any, **kwargs: Any) -> Any:
            import io

            return io.BufferedReader(io.BytesIO(self.answer))  # type: ignore[arg-type]

        def settimeout(self, value: float | None) -> None:
            pass

        def setsockopt(self, *args: Any) -> None:
            pass

        def close(self) -> None:
            pass

    def create_connection(address: tuple[str, int], *args: Any, **kwargs: Any) -> FakeSocket:
        connected.append(address)
        return FakeSocket()

    monkeypatch.setattr(urllib3.util.connection, "create_connection", create_connection)
    # When the image is opened
    response = ImageStore(local)._open(0, "http://images.test:8081/jobs/x/0.png?v=1")
    response.close()
    # Then the socket went to the resolved address, and the request line and Host header are
    # the URL's, as the server behind the name expects
    assert connected == [("127.0.0.9", 8081)]
    head = b"".join(sent).split(b"\r\n\r\n", 1)[0].decode()
    assert head.startswith("GET /jobs/x/0.png?v=1 HTTP/1.1\r\n")
    assert "\r\nHost: images.test:8081" in head
    assert "API-Key" not in head


def test_a_redirect_hop_is_checked_and_pinned_like_the_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given an image URL that redirects to another allowed name, which resolves internally
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        Resolver({NAME: [[CHECKED]], "files.imagepipeline.io": [["10.1.2.3"]]}),
    )

    class Redirect:
        status = 302
        headers = {"Location": "https://files.imagepipeline.io/0.png"}  # noqa: RUF012

        def get_redirect_location(self) -> str:
            return self.headers["Location"]

        def close(self) -> None:
            pass

        def release_conn(self) -> None:
            pass

    class OneRedirect:
        def __init__(self) -> None:
            self.targets: list[Any] = []

        def open(self, target: Any) -> Redirect:
            self.targets.append(target)
            return Redirect()

    downloads = OneRedirect()
    store = ImageStore(DEPLOYED, downloads=downloads)  # type: ignore[arg-type]
    # When it is opened
    with pytest.raises(ImageRejectedError) as refused:
        store.copy_one("job-1", 0, URL)
    # Then the second hop is refused before any connection, without naming its address
    assert [target.addresses for target in downloads.targets] == [(CHECKED,)]
    assert "10.1.2.3" not in str(refused.value)
    assert str(refused.value).startswith("image 0: ")
