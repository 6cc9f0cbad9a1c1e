"""Where webhooks may go: http(s) only, and (unless `WEBHOOKS_ALLOW_PRIVATE_URLS`) never to
private, loopback, link-local or otherwise internal addresses.

Checked when an endpoint is saved and again at every delivery against the addresses the
worker actually connects to, so a DNS answer that changes later (rebinding) cannot point a
webhook at the internal network.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from urllib.parse import urlsplit

from apps.events import conf


class BlockedURL(ValueError):
    """The URL is not an acceptable webhook target; the message says why."""


def _is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


def url_check_syntax(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL; raises BlockedURL otherwise."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise BlockedURL(f"not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise BlockedURL("only http and https URLs are allowed")
    if not parts.hostname:
        raise BlockedURL("the URL has no host")
    if parts.username or parts.password:
        raise BlockedURL("credentials in the URL are not allowed; sign with the secret")
    if parts.fragment:
        raise BlockedURL("the URL must not have a #fragment")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


_dns_cache: dict[tuple[str, int], tuple[float, list[str]]] = {}
_dns_lock = threading.Lock()


def resolve(host: str, port: int, *, cached: bool = True) -> list[str]:
    """The IP addresses `host` resolves to (TCP); raises BlockedURL when it does not."""
    key = (host, port)
    now = time.monotonic()
    if cached:
        with _dns_lock:
            hit = _dns_cache.get(key)
        if hit and hit[0] > now:
            return hit[1]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise BlockedURL(f"host {host!r} does not resolve ({exc})") from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not addresses:
        raise BlockedURL(f"host {host!r} does not resolve")
    with _dns_lock:
        _dns_cache[key] = (now + float(conf.get("WEBHOOK_DNS_CACHE_SECONDS")), addresses)
    return addresses


def addresses_check(host: str, addresses: list[str]) -> None:
    """Raise BlockedURL when private targets are not allowed and any address is one."""
    if conf.allow_private_urls():
        return
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if not _is_public(ip):
            raise BlockedURL(f"{host} resolves to a non-public address ({address})")


def url_validate(url: str) -> None:
    """Validate a webhook URL when an endpoint is saved; raises BlockedURL with the reason.

    With private URLs allowed (development) the host need not resolve from here: n8n may
    live under a name only the workers' network knows.
    """
    _scheme, host, port = url_check_syntax(url)
    if conf.allow_private_urls():
        return
    addresses_check(host, resolve(host, port, cached=False))
