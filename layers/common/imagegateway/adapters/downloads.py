"""What the store step agrees to fetch, and the HTTP client that fetches exactly that.

An image URL comes from the upstream's answer, so it is treated as hostile:

- It is parsed by urllib3 (the parser of the client that connects) and by `urllib.parse` (the
  one most code reads URLs with); a URL the two read differently (scheme, host, port, or
  credentials) is refused, and so is any backslash, whitespace or control character (the
  characters on which parsers disagree), any userinfo, and, when deployed, any scheme but https
  and any port but its default.
- The host must be on the allow-list. It is resolved once; when deployed, every address must be
  public (no loopback, private, link-local such as 169.254.169.254, or reserved address).
- The connection goes to an address that check saw (no second lookup a rebinding DNS server
  could answer differently), while TLS (SNI and the certificate's name) and the Host header
  stay those of the name.
- Redirects are never followed here: the caller checks every hop like the first.

Messages in the errors raised are written for the caller (they end up on the job); the details
(host, addresses) go to the log.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import certifi
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import LocationParseError
from urllib3.response import BaseHTTPResponse
from urllib3.util import Retry, Timeout, parse_url

from imagegateway.adapters.http_retry import BudgetedRetry
from imagegateway.domain.errors import ImageDownloadError, ImageRejectedError
from imagegateway.platform.observability import logger
from imagegateway.platform.settings import Settings
from imagegateway.platform.time_budget import read_timeout_within_budget

DEFAULT_PORTS = {"https": 443, "http": 80}
# A Retry-After up to this is waited inside the function; a longer one ends the attempt (the
# 429/503 answer is handed back and fails the copy, which the workflow retries later).
RETRY_AFTER_MAX_SECONDS = 10
# The characters of a host name (letters, digits, hyphens, underscores, dots); any other host
# must be an IP address.
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.")

Resolver = Callable[[str], list[str]]


@dataclass(frozen=True)
class DownloadTarget:
    """A checked image URL: where to connect, and what to say once connected."""

    scheme: str
    host: str  # lower-case, without a trailing dot or IPv6 brackets
    port: int
    request_target: str  # path and query, as sent on the request line
    addresses: tuple[str, ...]  # every address the host resolved to; all were checked

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"

    @property
    def url(self) -> str:
        """The URL as it is fetched (what a relative redirect is resolved against)."""
        return f"{self.scheme}://{self.host_header}{self.request_target}"


def resolve_host(host: str) -> list[str]:
    """Every address the host resolves to (IPv4 first, then IPv6, each in the resolver's
    order), from one lookup."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        logger.warning("image host did not resolve", extra={"host": host, "error": str(exc)})
        raise ImageDownloadError("the image host could not be resolved") from exc
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    return sorted(addresses, key=lambda address: ":" in address)


def host_allowed(host: str, patterns: tuple[str, ...]) -> bool:
    host = host.lower().rstrip(".")
    for pattern in patterns:
        if pattern == "*" or host == pattern:
            return True
        if pattern.startswith("*.") and host.endswith(pattern[1:]):
            return True
    return False


def _refuse(message: str, **detail: object) -> ImageRejectedError:
    logger.warning("image URL refused", extra={"reason": message, **detail})
    return ImageRejectedError(f"refusing the image URL: {message}")


def _unsafe_character(url: str) -> str | None:
    if "\\" in url:
        return "it contains a backslash"
    for char in url:
        if char.isspace() or unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp"):
            return "it contains whitespace or control characters"
    return None


def _plain_host(host: str | None) -> str:
    """A host as both parsers should agree on it: lower-case, no brackets, no trailing dot."""
    return (host or "").lower().strip("[]").rstrip(".")


def _parse(
    url: str, settings: Settings, allowed_hosts: tuple[str, ...]
) -> tuple[str, str, int, str]:
    """(scheme, host, port, request target) of a URL both parsers read the same way, on an
    allowed scheme, port and host; anything else raises ImageRejectedError."""
    problem = _unsafe_character(url)
    if problem:
        raise _refuse(problem)
    try:
        ours = parse_url(url)
        theirs = urlsplit(url)
        their_port = theirs.port
    except (LocationParseError, ValueError) as exc:
        raise _refuse("it is malformed", error=str(exc)) from exc
    scheme = (ours.scheme or "").lower()
    if not scheme:
        raise _refuse("it has no scheme")
    insecure_ok = settings.allow_insecure_downloads
    if scheme != "https" and not (scheme == "http" and insecure_ok):
        raise _refuse(f"its scheme ({scheme}) is not https", scheme=scheme)
    if ours.auth is not None or "@" in theirs.netloc:
        raise _refuse("it carries credentials")
    host = _plain_host(ours.host)
    if not host:
        raise _refuse("it has no host")
    if (scheme, host, ours.port) != (
        theirs.scheme.lower(),
        _plain_host(theirs.hostname),
        their_port,
    ):
        raise _refuse(
            "it is malformed (its host or port is ambiguous)",
            urllib3=[ours.scheme, ours.host, ours.port],
            urllib_parse=[theirs.scheme, theirs.hostname, their_port],
        )
    if not _is_ip(host) and not set(host) <= _NAME_CHARS:
        raise _refuse("it is malformed (its host is not a plain name or address)", host=host)
    port = ours.port or DEFAULT_PORTS[scheme]
    if port != DEFAULT_PORTS[scheme] and not insecure_ok:
        raise _refuse(f"only the default {scheme} port is fetched", host=host, port=port)
    if not host_allowed(host, allowed_hosts):
        raise _refuse("its host is not an allowed host", host=host)
    return scheme, host, port, ours.request_uri


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def check_download_url(
    url: str,
    settings: Settings,
    resolve: Resolver = resolve_host,
    *,
    allowed_hosts: tuple[str, ...] | None = None,
) -> DownloadTarget:
    """The checked target of a download URL, resolved once; refuses (ImageRejectedError) what a
    hostile URL could reach: other schemes and ports, hosts off the allow-list, ambiguous URLs
    and (when deployed) hosts with any non-public address such as 169.254.169.254.

    `allowed_hosts` replaces the settings' download allow-list (webhooks pass `("*",)`: their
    host is the caller's choice, every other rule still holds)."""
    if allowed_hosts is None:
        allowed_hosts = settings.download_allowed_hosts
    scheme, host, port, request_target = _parse(url, settings, allowed_hosts)
    addresses = (host,) if _is_ip(host) else tuple(resolve(host))
    if not addresses:
        raise ImageDownloadError("the image host could not be resolved")
    if not settings.allow_insecure_downloads:
        private = [address for address in addresses if not _is_public(address)]
        if private:
            raise _refuse(
                "its host does not resolve to a public address",
                host=host,
                addresses=list(addresses),
                refused_addresses=private,
            )
    return DownloadTarget(scheme, host, port, request_target, addresses)


_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _is_public(address: str) -> bool:
    """A global unicast address; an IPv6 address that carries an IPv4 one (mapped, NAT64,
    6to4) must carry a public one too."""
    ip = ipaddress.ip_address(address)
    if not ip.is_global or ip.is_multicast:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return _is_public(str(embedded))
    return True


def download_retry(settings: Settings) -> BudgetedRetry:
    """Connection errors, read timeouts before an answer, 429 and 5xx are retried with backoff,
    honouring a short Retry-After, while the next attempt fits in the invocation's time."""
    return BudgetedRetry.for_idempotent_get(
        status_retries=3,
        retry_after_max=RETRY_AFTER_MAX_SECONDS,
        attempt_seconds=settings.upstream_connect_timeout_seconds
        + settings.upstream_read_timeout_seconds,
    )


def pinned_pool(
    target: DownloadTarget,
    address: str,
    *,
    ca_certs: str,
    maxsize: int,
    retries: Retry | bool,
    **connection_args: Any,
) -> HTTPConnectionPool:
    """A pool that connects to `address` (one the target's check saw) and speaks TLS for the
    target's name. `connection_args` go to each connection (a subclass's own arguments)."""
    if target.scheme == "https":
        return HTTPSConnectionPool(
            host=address,
            port=target.port,
            maxsize=maxsize,
            retries=retries,
            cert_reqs="CERT_REQUIRED",
            ca_certs=ca_certs,
            server_hostname=target.host,  # SNI
            assert_hostname=target.host,  # the certificate must name the host
            **connection_args,
        )
    return HTTPConnectionPool(
        host=address, port=target.port, maxsize=maxsize, retries=retries, **connection_args
    )


class DownloadClient:
    """GETs checked targets, connecting to the checked address only.

    One connection pool per (scheme, address, port, name), so connections are reused across the
    images of a job, and a pool is only ever used for the address it was made for."""

    def __init__(self, settings: Settings, *, ca_certs: str | None = None) -> None:
        self._settings = settings
        self._ca_certs = ca_certs or certifi.where()
        self.retry = download_retry(settings)
        self._pools: dict[tuple[str, str, int, str], HTTPConnectionPool] = {}
        self._lock = threading.Lock()

    def pool_for(self, target: DownloadTarget) -> HTTPConnectionPool:
        """The pool that connects to the target's first checked address (resolvers put the
        preferred one first), speaking TLS for the target's name."""
        address = target.addresses[0]
        key = (target.scheme, address, target.port, target.host)
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                pool = self._pools[key] = self._new_pool(target, address)
        return pool

    def _new_pool(self, target: DownloadTarget, address: str) -> HTTPConnectionPool:
        return pinned_pool(
            target,
            address,
            ca_certs=self._ca_certs,
            maxsize=self._settings.image_download_workers,
            retries=self.retry,
        )

    def _timeout(self) -> Timeout:
        """The connect and read timeouts, the read one cut to what the invocation has left."""
        connect = self._settings.upstream_connect_timeout_seconds
        read = read_timeout_within_budget(self._settings.upstream_read_timeout_seconds, connect)
        if read is None:
            raise ImageDownloadError("no time was left in this invocation to download the image")
        return Timeout(connect=connect, read=read)

    def open(self, target: DownloadTarget) -> BaseHTTPResponse:
        """A streaming GET of the target (its body not read yet). A redirect is returned as is.
        Raises urllib3's errors (urllib3.exceptions.HTTPError) when no answer came."""
        timeout = self._timeout()
        return self.pool_for(target).urlopen(
            "GET",
            target.request_target,
            headers={"Host": target.host_header, "Accept": "image/*"},
            timeout=timeout,
            retries=self.retry,
            redirect=False,
            assert_same_host=False,
            preload_content=False,
            decode_content=True,
        )

    def close(self) -> None:
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()
