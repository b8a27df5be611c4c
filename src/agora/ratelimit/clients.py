"""Who is asking: the client address behind trusted proxies, and the allowlist.

``X-Forwarded-For`` is believed only when the direct peer is a trusted proxy (uvicorn #589,
#1068): then the hops are read right to left, skipping trusted proxies, and the first
untrusted one is the client. Everything left of it was written by the client and is ignored,
so a client cannot choose its own address (and with it, its own rate-limit bucket).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.lru_cache(maxsize=4096)  # the same few peers and proxies on every request
def parse_ip(text: str) -> IPAddress | None:
    """An address as peers and proxies write it: bare, ``v4:port`` or ``[v6]:port``."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def bucket_name(ip: IPAddress | None) -> str:
    """The rate-limit identity of an address. IPv6 clients are keyed by their /64: one
    subscriber usually holds a whole /64 and could otherwise rotate through it."""
    if ip is None:
        return "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


_MEMO_SIZE = 4096


class Networks:
    def __init__(self, cidrs: Iterable[str]) -> None:
        self._networks: tuple[IPNetwork, ...] = tuple(
            ipaddress.ip_network(cidr, strict=False) for cidr in cidrs
        )
        # Membership tests cost microseconds each (5% of a posts process's CPU under load,
        # py-spy), and the same few peers ask on every request: remember the answers.
        self._memo: dict[IPAddress, bool] = {}

    def __bool__(self) -> bool:
        return bool(self._networks)

    def __contains__(self, ip: IPAddress) -> bool:
        known = self._memo.get(ip)
        if known is None:
            if len(self._memo) >= _MEMO_SIZE:  # bounded: a flood of addresses cannot grow it
                self._memo.clear()
            known = self._memo[ip] = any(ip in network for network in self._networks)
        return known


def client_address(
    peer: str | None, forwarded_for: Sequence[str], trusted: Networks
) -> IPAddress | None:
    """``peer`` is the TCP peer; ``forwarded_for`` the ``X-Forwarded-For`` values in order."""
    address = parse_ip(peer) if peer else None
    if address is None or address not in trusted or not forwarded_for:
        return address
    hops = [hop for value in forwarded_for for hop in value.split(",")]
    for hop in reversed(hops):
        ip = parse_ip(hop)
        if ip is None:
            # A malformed hop: stop at the last address a trusted proxy vouched for.
            return address
        address = ip
        if ip not in trusted:
            return address
    return address  # every hop is a trusted proxy: the left-most one is the client
