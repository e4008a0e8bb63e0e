"""Where a webhook may be delivered: refusing private networks against SSRF.

The host is resolved once and every address it resolves to is checked; the connection then
goes to the checked address (with the host's name for TLS and the Host header), so a DNS
answer that changes between the check and the connection cannot redirect it. Redirects are
never followed. Refused: private, loopback, link-local (the instance metadata service),
carrier-grade NAT, multicast, reserved and unspecified addresses, IPv4 or IPv6 (and IPv4
mapped into IPv6). Local mode may deliver to loopback (STRATUS_WEBHOOK_LOOPBACK, forced off
in Lambda), for a receiver on the developer's machine.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from chalicelib import config

_CGNAT = ipaddress.ip_network("100.64.0.0/10")


class AddressRefused(ValueError):
    """The URL is malformed or names an address deliveries may not reach."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str  # with the query
    address: str  # the checked IP to connect to


def parse(url: str) -> tuple[str, str, int, str]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AddressRefused("the URL must be http:// or https:// with a host")
    if parts.username or parts.password:
        raise AddressRefused("credentials in the URL are not allowed")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as error:
        raise AddressRefused("invalid port") from error
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname, port, path


def refused_reason(address: str) -> str | None:
    """Why deliveries may not go to this IP address; None when they may."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return None if config.settings.webhook_loopback else "loopback"
    if ip.is_link_local:
        return "link-local"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return "shared (carrier-grade NAT)"
    if ip.is_private:
        return "private"
    if ip.is_multicast or ip.is_reserved or ip.is_unspecified:
        return "not a unicast internet address"
    return None


def resolve(url: str) -> Target:
    """The URL's target, its host resolved and every address checked."""
    scheme, host, port, path = parse(url)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise AddressRefused(f"{host} does not resolve") from error
    addresses = sorted({str(info[4][0]) for info in infos})
    if not addresses:
        raise AddressRefused(f"{host} does not resolve")
    for address in addresses:
        reason = refused_reason(address)
        if reason is not None:
            raise AddressRefused(f"{host} resolves to a {reason} address ({address})")
    return Target(scheme, host, port, path, addresses[0])
