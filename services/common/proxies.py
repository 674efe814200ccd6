"""Who is on the other end of a request: the socket's peer, unless that peer is a proxy we
were told to trust (``IMARC_TRUSTED_PROXIES``), in which case the address it put in
``X-Forwarded-For``.

Every proxy appends the address it received the request from, so the list is read from the
right, skipping trusted proxies; the first address that is not one is the client. What a
client writes into the header itself sits to the left of that and is never believed — nor
is the header at all when the peer is not a trusted proxy.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from functools import lru_cache

from starlette.requests import Request

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: the longest address kept (an audit row's column, a throttle key)
MAX_ADDRESS = 64


class ProxyConfigError(ValueError):
    """IMARC_TRUSTED_PROXIES names something that is not an address or a network."""


@lru_cache(maxsize=16)
def trusted_networks(spec: str) -> tuple[Network, ...]:
    """``"10.0.0.0/8, 192.0.2.7"`` → its networks (an address is a network of one)."""
    out: list[Network] = []
    for item in spec.replace(";", ",").split(","):
        if not (item := item.strip()):
            continue
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ProxyConfigError(
                f"IMARC_TRUSTED_PROXIES: {item!r} is not an address or a network; give "
                "comma-separated addresses or CIDR ranges such as 10.0.0.0/8"
            ) from None
    return tuple(out)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [2001:db8::1]:443
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # 192.0.2.1:443
        text = text.split(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def is_trusted(address: str, trusted: Sequence[Network]) -> bool:
    ip = _address(address)
    return ip is not None and any(ip in net for net in trusted)


def client_address(peer: str, forwarded: Sequence[str], trusted: Sequence[Network]) -> str:
    """The client's address, from the socket ``peer`` and the ``X-Forwarded-For`` header
    lines (see the module docstring)."""
    address = peer
    if trusted and is_trusted(peer, trusted):
        hops = [h.strip() for line in forwarded for h in line.split(",") if h.strip()]
        for hop in reversed(hops):
            address = hop
            if not is_trusted(hop, trusted):
                break
    ip = _address(address)
    return str(ip) if ip is not None else address[:MAX_ADDRESS]


def request_address(request: Request, trusted_spec: str) -> str:
    peer = request.client.host if request.client else ""
    return client_address(
        peer, request.headers.getlist("x-forwarded-for"), trusted_networks(trusted_spec)
    )
