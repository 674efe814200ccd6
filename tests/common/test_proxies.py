"""Who the client is: the socket's peer, or what a trusted proxy says it forwarded for."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.common.proxies import client_address, trusted_networks
from services.common.settings import Settings

GATEWAY = trusted_networks("10.0.0.2")
PODS = trusted_networks("10.0.0.0/8, fd00::/8")


def test_without_trusted_proxies_the_peer_is_the_client() -> None:
    assert client_address("192.0.2.7", ["198.51.100.1"], ()) == "192.0.2.7"
    assert client_address("10.0.0.2", ["198.51.100.1"], trusted_networks("")) == "10.0.0.2"


def test_a_client_that_is_not_a_trusted_proxy_cannot_name_another_address() -> None:
    assert client_address("192.0.2.7", ["198.51.100.1"], GATEWAY) == "192.0.2.7"


def test_a_trusted_proxy_names_the_client_and_what_the_client_wrote_is_ignored() -> None:
    # the client sent "1.1.1.1, 2.2.2.2"; the gateway appended the peer it saw
    assert client_address("10.0.0.2", ["1.1.1.1, 2.2.2.2", "203.0.113.5"], GATEWAY) == (
        "203.0.113.5"
    )
    assert client_address("10.0.0.2", ["1.1.1.1, 2.2.2.2, 203.0.113.5"], GATEWAY) == ("203.0.113.5")
    # no header from a trusted proxy: the proxy itself
    assert client_address("10.0.0.2", [], GATEWAY) == "10.0.0.2"


def test_proxies_in_a_row_are_skipped_from_the_right() -> None:
    # client → ingress controller (10.1.2.3) → gateway (10.0.0.2) → service
    assert client_address("10.0.0.2", ["9.9.9.9, 198.51.100.4, 10.1.2.3"], PODS) == ("198.51.100.4")
    # every hop trusted: the leftmost is the best there is
    assert client_address("10.0.0.2", ["10.5.5.5, 10.1.2.3"], PODS) == "10.5.5.5"


def test_addresses_are_normalised_and_junk_is_bounded() -> None:
    assert client_address("10.0.0.2", ["198.51.100.4:5123"], GATEWAY) == "198.51.100.4"
    assert client_address("10.0.0.2", ["[2001:db8::1]:443"], GATEWAY) == "2001:db8::1"
    assert client_address("10.0.0.2", ["2001:DB8:0::1"], GATEWAY) == "2001:db8::1"
    assert len(client_address("10.0.0.2", ["x" * 500], GATEWAY)) == 64


def test_a_mistyped_trusted_proxy_stops_the_start() -> None:
    with pytest.raises(ValidationError, match="not an address or a network"):
        Settings(trusted_proxies="10.0.0.0/8, gateway")
    assert Settings(trusted_proxies="10.0.0.0/8; ::1").trusted_proxies
