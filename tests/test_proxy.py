from __future__ import annotations

import pytest

from monoceros.errors import ConfigError
from monoceros.server.proxy import ProxyTrust

LOCAL = ["127.0.0.1", "::1"]


def xff(*values: str) -> list[tuple[bytes, bytes]]:
    return [(b"x-forwarded-for", v.encode()) for v in values]


def proto(value: str) -> list[tuple[bytes, bytes]]:
    return [(b"x-forwarded-proto", value.encode())]


# -- trusts -----------------------------------------------------------------------------------------------


def test_literal_addresses() -> None:
    trust = ProxyTrust(LOCAL)
    assert trust.trusts("127.0.0.1")
    assert trust.trusts("::1")
    assert trust.trusts("0:0::1")  # same address, other spelling
    assert not trust.trusts("127.0.0.2")
    assert not trust.trusts("10.0.0.1")
    assert not trust.trusts("not-an-ip")
    # Cached verdicts stay right.
    assert trust.trusts("0:0::1")
    assert not trust.trusts("127.0.0.2")


def test_networks() -> None:
    trust = ProxyTrust(["10.0.0.0/8", "2001:db8::/32", "192.168.1.7/24"])
    assert trust.trusts("10.1.2.3")
    assert trust.trusts("2001:db8::5")
    assert trust.trusts("192.168.1.200")  # non-strict: host bits ignored
    assert not trust.trusts("11.0.0.1")
    assert not trust.trusts("2001:db9::1")
    assert not trust.trusts("127.0.0.1")


def test_ipv4_mapped_and_scoped_addresses() -> None:
    trust = ProxyTrust(["10.0.0.0/8", "fe80::/10", "127.0.0.1"])
    assert trust.trusts("::ffff:10.0.0.1")
    assert trust.trusts("::ffff:127.0.0.1")
    assert trust.trusts("fe80::1%eth0")
    assert not trust.trusts("::ffff:11.0.0.1")


def test_star_trusts_everyone() -> None:
    trust = ProxyTrust(["*"])
    assert trust.trusts("203.0.113.9")
    assert trust.trusts("2001:db8::1")


def test_unix_peers_are_always_trusted() -> None:
    trust = ProxyTrust([])
    assert trust.trusts(None)
    assert trust.trusts("/run/monoceros.sock")
    assert trust.trusts("unix:/run/monoceros.sock")
    assert not trust.trusts("127.0.0.1")
    assert ProxyTrust(["unix:", " 127.0.0.1 ", ""]).trusts("127.0.0.1")


@pytest.mark.parametrize("entry", ["nonsense", "10.0.0.0/33", "1.2.3", "localhost"])
def test_bad_entries(entry: str) -> None:
    with pytest.raises(ConfigError, match=rf"^forwarded_allow_ips '{entry}'"):
        ProxyTrust(["127.0.0.1", entry])


def test_cache_is_bounded() -> None:
    trust = ProxyTrust(["10.0.0.0/8"])
    for i in range(10000):
        assert trust.trusts(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}")
        assert not trust.trusts(f"11.{i // 65536}.{i // 256 % 256}.{i % 256}")
    assert len(trust._verdicts.data) <= 4096  # trusted and untrusted verdicts together
    assert trust._verdicts.limit == 4096


# -- resolve: who may speak -------------------------------------------------------------------------------


def test_untrusted_peer_is_ignored() -> None:
    trust = ProxyTrust(LOCAL)
    headers = xff("1.2.3.4") + proto("https")
    assert trust.resolve(("203.0.113.5", 5000), "http", headers) == (("203.0.113.5", 5000), "http")


def test_trusted_peer_without_headers_is_unchanged() -> None:
    trust = ProxyTrust(LOCAL)
    headers = [(b"host", b"example.com"), (b"x-forwarded-host", b"evil")]
    assert trust.resolve(("127.0.0.1", 5000), "http", headers) == (("127.0.0.1", 5000), "http")
    assert trust.resolve(("127.0.0.1", 5000), "https", []) == (("127.0.0.1", 5000), "https")


def test_unix_peer_is_trusted() -> None:
    trust = ProxyTrust([])
    assert trust.resolve(None, "http", xff("1.2.3.4") + proto("https")) == (("1.2.3.4", 0), "https")


def test_star() -> None:
    trust = ProxyTrust(["*"])
    headers = xff("1.1.1.1, 2.2.2.2")
    assert trust.resolve(("203.0.113.5", 1), "http", headers) == (("1.1.1.1", 0), "http")


# -- resolve: X-Forwarded-For -----------------------------------------------------------------------------


def test_single_hop() -> None:
    trust = ProxyTrust(LOCAL)
    assert trust.resolve(("127.0.0.1", 1), "http", xff("198.51.100.7")) == (("198.51.100.7", 0), "http")


def test_chain_walks_right_to_left_past_trusted_proxies() -> None:
    trust = ProxyTrust(["127.0.0.1", "10.0.0.0/8"])
    # A client forged "6.6.6.6"; the real client is 198.51.100.7, then two trusted proxies appended.
    headers = xff("6.6.6.6, 198.51.100.7, 10.0.0.2", "10.0.0.3")
    assert trust.resolve(("127.0.0.1", 1), "http", headers) == (("198.51.100.7", 0), "http")


def test_chain_all_trusted_takes_leftmost() -> None:
    trust = ProxyTrust(["127.0.0.1", "10.0.0.0/8"])
    headers = xff("10.0.0.9, 10.0.0.2")
    assert trust.resolve(("127.0.0.1", 1), "http", headers) == (("10.0.0.9", 0), "http")


def test_untrusted_garbage_is_the_client() -> None:
    trust = ProxyTrust(LOCAL)
    assert trust.resolve(("127.0.0.1", 1), "http", xff("unknown")) == (("unknown", 0), "http")


def test_empty_entries_are_skipped() -> None:
    trust = ProxyTrust(LOCAL)
    assert trust.resolve(("127.0.0.1", 1), "http", xff(" , 1.2.3.4 ,, ")) == (("1.2.3.4", 0), "http")
    assert trust.resolve(("127.0.0.1", 1), "http", xff(" , ")) == (("127.0.0.1", 1), "http")


def test_ports_in_entries_are_dropped() -> None:
    trust = ProxyTrust(LOCAL)
    assert trust.resolve(("127.0.0.1", 1), "http", xff("1.2.3.4:5678")) == (("1.2.3.4", 0), "http")
    assert trust.resolve(("127.0.0.1", 1), "http", xff("[2001:db8::1]:443")) == (("2001:db8::1", 0), "http")
    assert trust.resolve(("127.0.0.1", 1), "http", xff("2001:db8::1")) == (("2001:db8::1", 0), "http")


def test_trusted_entry_with_port_is_skipped() -> None:
    trust = ProxyTrust(["127.0.0.1", "10.0.0.0/8"])
    headers = xff("1.2.3.4, 10.0.0.2:8080")
    assert trust.resolve(("127.0.0.1", 1), "http", headers) == (("1.2.3.4", 0), "http")


# -- resolve: X-Forwarded-Proto ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("incoming", "forwarded", "expected"),
    [
        ("http", "https", "https"),
        ("http", " HTTPS ", "https"),
        ("https", "http", "http"),
        ("http", "wss", "https"),
        ("http", "ws", "http"),
        ("ws", "https", "wss"),
        ("ws", "http", "ws"),
        ("wss", "http", "ws"),
        ("ws", "wss", "wss"),
        ("http", "ftp", "http"),
        ("http", "", "http"),
        ("http", "http, https", "https"),
        ("http", "https,http", "http"),
    ],
)
def test_proto(incoming: str, forwarded: str, expected: str) -> None:
    trust = ProxyTrust(LOCAL)
    assert trust.resolve(("127.0.0.1", 1), incoming, proto(forwarded)) == (("127.0.0.1", 1), expected)


def test_last_proto_header_wins() -> None:
    trust = ProxyTrust(LOCAL)
    headers = [*proto("http"), (b"host", b"x"), *proto("https")]
    assert trust.resolve(("127.0.0.1", 1), "http", headers)[1] == "https"


def test_proto_and_for_together() -> None:
    trust = ProxyTrust(LOCAL)
    headers = [(b"host", b"x"), *proto("https"), *xff("198.51.100.7")]
    assert trust.resolve(("::1", 1), "http", headers) == (("198.51.100.7", 0), "https")


# -- Forwarded (RFC 7239) and X-Forwarded-Host ------------------------------------------------------------


def fwd(*values: str) -> list[tuple[bytes, bytes]]:
    return [(b"host", b"internal:8000")] + [(b"forwarded", v.encode()) for v in values]


def test_rfc7239_parse() -> None:
    from monoceros.protocols.forwarded import node, parse

    assert parse("for=192.0.2.60;proto=http;by=203.0.113.43") == [
        {"for": "192.0.2.60", "proto": "http", "by": "203.0.113.43"}
    ]
    assert parse('For="[2001:db8:cafe::17]:4711", for=unknown;HOST="a.example"') == [
        {"for": "[2001:db8:cafe::17]:4711"},
        {"for": "unknown", "host": "a.example"},
    ]
    assert parse('for="_gazonk"') == [{"for": "_gazonk"}]
    assert parse('for="a\\"b"') == [{"for": 'a"b'}]
    assert parse(", , for=1.2.3.4 ,") == [{"for": "1.2.3.4"}]
    for bad in ("for", "for=", 'for="open', "for=a b", "for=a;for=b", "=x", "for=a,,x", "for=a=b"):
        assert parse(bad) is None, bad
    assert node("[2001:db8:cafe::17]:4711") == ("2001:db8:cafe::17", 4711)
    assert node("192.0.2.43:47011") == ("192.0.2.43", 47011)
    assert node("192.0.2.43") == ("192.0.2.43", 0)
    assert node("unknown") == ("unknown", 0)
    assert node("10.0.0.1:99999") == ("10.0.0.1", 0)


def test_forwarded_right_most_untrusted_with_its_proto_and_host() -> None:
    trust = ProxyTrust(["127.0.0.1", "10.0.0.0/8"])
    headers = fwd("for=198.51.100.7;proto=https;host=shop.example, for=10.1.1.1;proto=http;host=lb.internal")
    client, scheme = trust.resolve(("127.0.0.1", 5000), "http", headers)
    assert (client, scheme) == (("198.51.100.7", 0), "https")
    assert dict(headers)[b"host"] == b"shop.example"
    # a spoofed element left of the real client is not believed
    headers = fwd('for=1.1.1.1;host=evil.example, for="[2001:db8::9]:4711";proto=https;host=shop.example')
    client, scheme = trust.resolve(("127.0.0.1", 5000), "http", headers)
    assert (client, scheme) == (("2001:db8::9", 4711), "https")
    assert dict(headers)[b"host"] == b"shop.example"


def test_forwarded_wins_over_x_forwarded_and_is_ignored_when_malformed_or_untrusted() -> None:
    trust = ProxyTrust(LOCAL)
    headers = fwd("for=198.51.100.7;proto=https") + xff("203.0.113.1") + proto("http")
    assert trust.resolve(("127.0.0.1", 1), "http", headers) == (("198.51.100.7", 0), "https")
    headers = fwd('for="198.51.100.7') + xff("203.0.113.1")
    assert trust.resolve(("127.0.0.1", 1), "http", headers) == (("127.0.0.1", 1), "http")
    headers = fwd("for=198.51.100.7;proto=https;host=x.example")
    assert trust.resolve(("192.0.2.1", 1), "http", headers) == (("192.0.2.1", 1), "http")
    assert dict(headers)[b"host"] == b"internal:8000"


def test_x_forwarded_host() -> None:
    trust = ProxyTrust(LOCAL)
    headers = [(b"host", b"internal"), (b"x-forwarded-host", b"a.example, shop.example:8443")]
    trust.resolve(("127.0.0.1", 1), "http", headers)
    assert dict(headers)[b"host"] == b"shop.example:8443"
    headers = [(b"x-forwarded-host", b"shop.example")]  # HTTP/1.0 without Host: one is added
    trust.resolve(("127.0.0.1", 1), "http", headers)
    assert dict(headers)[b"host"] == b"shop.example"
    headers = [(b"host", b"internal"), (b"x-forwarded-host", b"evil.example/path")]
    trust.resolve(("127.0.0.1", 1), "http", headers)
    assert dict(headers)[b"host"] == b"internal"  # not a host: left alone
    headers = [(b"host", b"internal"), (b"x-forwarded-host", b"shop.example")]
    trust.resolve(("192.0.2.1", 1), "http", headers)
    assert dict(headers)[b"host"] == b"internal"  # an untrusted peer's header: ignored
