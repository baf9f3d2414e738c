"""The client's address for the audit trail: the socket's peer, or, behind a trusted proxy, the
address that proxy says it forwarded for (``X-Forwarded-For``), never a header anyone could send."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from starlette.requests import Request

from streamlimit.errors import ConfigurationError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted_networks(setting: str) -> tuple[Network, ...]:
    """``STREAMLIMIT_TRUSTED_PROXIES``: comma-separated addresses or CIDRs."""
    out = []
    for item in (part.strip() for part in setting.split(",")):
        if not item:
            continue
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigurationError(
                f"STREAMLIMIT_TRUSTED_PROXIES: {item!r} is not an IP address or CIDR"
            ) from None
    return tuple(out)


def _trusted(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def client_address(request: Request, networks: Sequence[Network]) -> str | None:
    """The peer's address; when the peer is a trusted proxy, the right-most address of
    ``X-Forwarded-For`` that is not itself a trusted proxy (the one the outermost trusted proxy
    saw), so a client cannot choose what is recorded by sending the header itself."""
    peer = request.client.host if request.client else None
    if peer is None or not networks or not _trusted(peer, networks):
        return peer
    hops = [h.strip() for v in request.headers.getlist("x-forwarded-for") for h in v.split(",")]
    for hop in reversed([h for h in hops if h]):
        if not _trusted(hop, networks):
            return hop if _valid(hop) else peer
    return peer


def _valid(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True
