"""Client address behind trusted proxies: the right-most untrusted X-Forwarded-For hop."""

from __future__ import annotations

import ipaddress

import pytest

from agora.ratelimit.clients import Networks, bucket_name, client_address, parse_ip

LOOPBACK = Networks(["127.0.0.0/8", "::1/128"])
GATEWAYS = Networks(["10.0.0.0/24"])


def address(peer: str | None, forwarded: list[str], trusted: Networks = LOOPBACK) -> str:
    return str(client_address(peer, forwarded, trusted))


def test_an_untrusted_peer_is_the_client_whatever_it_claims() -> None:
    assert address("203.0.113.9", ["198.51.100.1"]) == "203.0.113.9"
    assert address("203.0.113.9", ["127.0.0.1"]) == "203.0.113.9"


def test_a_trusted_peer_is_believed_for_the_right_most_hop() -> None:
    assert address("127.0.0.1", ["198.51.100.1"]) == "198.51.100.1"
    assert address("127.0.0.1", []) == "127.0.0.1"


def test_hops_the_client_wrote_are_ignored() -> None:
    """The client sent ``X-Forwarded-For: 1.2.3.4``; the gateway appended the real peer."""
    assert address("127.0.0.1", ["1.2.3.4, 198.51.100.1"]) == "198.51.100.1"
    assert address("127.0.0.1", ["1.2.3.4", "198.51.100.1"]) == "198.51.100.1"


def test_a_chain_of_trusted_proxies_is_walked() -> None:
    forwarded = ["6.6.6.6, 198.51.100.7, 10.0.0.3"]
    assert address("10.0.0.2", forwarded, GATEWAYS) == "198.51.100.7"


def test_all_hops_trusted_gives_the_left_most() -> None:
    assert address("10.0.0.2", ["10.0.0.5, 10.0.0.3"], GATEWAYS) == "10.0.0.5"


def test_a_malformed_hop_stops_at_the_last_trusted_address() -> None:
    assert address("10.0.0.2", ["198.51.100.7, garbage"], GATEWAYS) == "10.0.0.2"
    assert address("10.0.0.2", ["garbage, 10.0.0.3"], GATEWAYS) == "10.0.0.3"


def test_no_peer() -> None:
    assert client_address(None, ["198.51.100.1"], LOOPBACK) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("198.51.100.1", "198.51.100.1"),
        (" 198.51.100.1:4711 ", "198.51.100.1"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("2001:db8::1", "2001:db8::1"),
        ("::ffff:198.51.100.1", "198.51.100.1"),
    ],
)
def test_parse_ip(text: str, expected: str) -> None:
    assert str(parse_ip(text)) == expected


@pytest.mark.parametrize("text", ["", "unknown", "999.1.1.1", "_hidden"])
def test_parse_ip_refuses_non_addresses(text: str) -> None:
    assert parse_ip(text) is None


def test_ipv6_clients_share_their_64() -> None:
    one = ipaddress.ip_address("2001:db8:1:2:aaaa::1")
    other = ipaddress.ip_address("2001:db8:1:2:bbbb::9")
    assert bucket_name(one) == bucket_name(other) == "2001:db8:1:2::/64"
    assert bucket_name(ipaddress.ip_address("198.51.100.1")) == "198.51.100.1"
    assert bucket_name(None) == "unknown"


def test_networks() -> None:
    assert not Networks([])
    allow = Networks(["192.0.2.0/24", "fd00::/8"])
    assert ipaddress.ip_address("192.0.2.77") in allow
    assert ipaddress.ip_address("fd12::1") in allow
    assert ipaddress.ip_address("192.0.3.1") not in allow


def test_networks_remember_answers_within_a_bound() -> None:
    allow = Networks(["192.0.2.0/24"])
    inside, outside = ipaddress.ip_address("192.0.2.1"), ipaddress.ip_address("198.51.100.1")
    for _ in range(3):  # remembered answers are the same answers
        assert inside in allow
        assert outside not in allow
    # A flood of distinct addresses never grows the memory past its bound.
    for n in range(10_000):
        assert ipaddress.ip_address(f"10.{n // 65536}.{n // 256 % 256}.{n % 256}") not in allow
    assert len(allow._memo) <= 4096
    assert inside in allow
