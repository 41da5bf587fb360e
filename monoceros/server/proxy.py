"""Trusting Forwarded (RFC 7239) and X-Forwarded-For / -Proto / -Host from known proxies only.

Behind a reverse proxy the TCP peer is the proxy, so the real client address, scheme and host arrive in
headers. Anyone can send those headers, so they are believed only when the peer is listed in
``forwarded_allow_ips`` (the behaviour uvicorn documents for ``--forwarded-allow-ips``). A chain of proxies is
read from the right, skipping the trusted ones: the first address that is not one is the client (the
right-most untrusted rule), and with ``Forwarded`` that element's ``proto`` and ``host`` are the ones its
proxy saw. ``Forwarded``, when present, is believed instead of the X-Forwarded-* headers, not beside them.
This runs for every request, so the common cases (untrusted peer, or no such headers) cost a set lookup and
one header scan.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from ..errors import ConfigError
from ..protocols import forwarded as rfc7239
from ..protocols.headers import Memo

Client = tuple[str, int] | None
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_CACHE_LIMIT = 4096
"""Cached verdicts; peer addresses are the clients', so the memo must not grow forever."""

_HTTP_SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}
_WS_SCHEMES = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}


class ProxyTrust:
    """Which peers may set the client address and scheme through X-Forwarded-* headers."""

    __slots__ = ("_configured", "_networks", "_verdicts", "trust_all")

    def __init__(self, allow: Sequence[str]) -> None:
        self.trust_all = False
        self._configured: set[str] = set()
        self._networks: list[_Network] = []
        for raw in allow:
            entry = raw.strip()
            if not entry or entry.startswith("unix:"):
                continue  # unix-socket peers are always trusted
            if entry == "*":
                self.trust_all = True
                continue
            try:
                if "/" in entry:
                    self._networks.append(ipaddress.ip_network(entry, strict=False))
                else:
                    self._configured.add(str(ipaddress.ip_address(entry)))
            except ValueError:
                raise ConfigError(f"forwarded_allow_ips {raw!r}: not an IP address, a CIDR network, or '*'") from None
        self._verdicts: Memo[str, bool] = Memo("trust verdicts by peer address", _CACHE_LIMIT)

    def trusts(self, host: str | None) -> bool:
        """Whether a connection from ``host`` may set X-Forwarded-*; None or a path means a unix socket."""
        if host is None or not host or host[0] == "/" or host.startswith("unix:"):
            return True
        return self._trusts_ip(host)

    def _trusts_ip(self, host: str) -> bool:
        if self.trust_all or host in self._configured:
            return True
        verdict = self._verdicts.data.get(host)
        if verdict is None:
            verdict = self._verdicts.remember(host, self._check(host))
        return verdict

    def _check(self, host: str) -> bool:
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return False
        candidates: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [ip]
        if isinstance(ip, ipaddress.IPv6Address):
            # A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; the scope id is not part of the rule.
            if ip.ipv4_mapped is not None:
                candidates.append(ip.ipv4_mapped)
            elif ip.scope_id is not None:
                candidates.append(ipaddress.IPv6Address(host.partition("%")[0]))
        for addr in candidates:
            if str(addr) in self._configured:
                return True
            for net in self._networks:
                if addr.version == net.version and addr in net:
                    return True
        return False

    def resolve(self, client: Client, scheme: str, headers: list[tuple[bytes, bytes]]) -> tuple[Client, str]:
        """The (client, scheme) the app should see, after believing a trusted proxy's headers; a forwarded
        host replaces the request's Host header in ``headers``.

        Header names must be lowercase. X-Forwarded-For is read right to left, skipping trusted proxies;
        the first address that is not one is the client (port 0, since proxies do not forward it). The last
        X-Forwarded-Proto value is the scheme, kept a websocket scheme on websocket requests, and the last
        X-Forwarded-Host value the host.
        """
        if not self.trusts(client[0] if client is not None else None):
            return client, scheme
        proto: bytes | None = None
        host: bytes | None = None
        forwarded: list[bytes] = []
        standard: list[bytes] = []
        for name, value in headers:
            if name[:2] == b"x-":
                if name == b"x-forwarded-proto":
                    proto = value
                elif name == b"x-forwarded-for":
                    forwarded.append(value)
                elif name == b"x-forwarded-host":
                    host = value
            elif name == b"forwarded":
                standard.append(value)
        if standard:
            return self._rfc7239(standard, client, scheme, headers)
        if proto is not None:
            scheme = _forwarded_scheme(proto, scheme)
        if forwarded:
            client = self._forwarded_client(forwarded, client)
        if host is not None:
            _set_host(headers, host.rpartition(b",")[2].strip())
        return client, scheme

    def _rfc7239(
        self, values: list[bytes], client: Client, scheme: str, headers: list[tuple[bytes, bytes]]
    ) -> tuple[Client, str]:
        elements = rfc7239.parse(b",".join(values).decode("latin-1"))
        if not elements:
            return client, scheme  # malformed: none of it is believed
        chosen = elements[0]
        for element in reversed(elements):
            node = element.get("for")
            if node is None:
                continue
            chosen = element
            if not self._trusts_ip(rfc7239.node(node)[0]):
                break
        node = chosen.get("for")
        if node is not None:
            client = rfc7239.node(node)
        proto = chosen.get("proto")
        if proto is not None:
            scheme = _forwarded_scheme(proto.encode("latin-1"), scheme)
        host = chosen.get("host")
        if host:
            _set_host(headers, host.encode("latin-1"))
        return client, scheme

    def _forwarded_client(self, values: list[bytes], client: Client) -> Client:
        entries = [e.strip() for e in b",".join(values).decode("latin-1").split(",")]
        entries = [e for e in entries if e]
        if not entries:
            return client
        for entry in reversed(entries):
            host = _strip_port(entry)
            if not self._trusts_ip(host):
                return (host, 0)
        return (_strip_port(entries[0]), 0)


def _set_host(headers: list[tuple[bytes, bytes]], host: bytes) -> None:
    """Replace the Host header (or add one) with the host a trusted proxy says the client asked for."""
    if not host or any(c in host for c in b" \t\r\n/\\@"):
        return  # not a host[:port]: left as it was
    for i, (name, _) in enumerate(headers):
        if name == b"host":
            headers[i] = (b"host", host)
            return
    headers.append((b"host", host))


def _forwarded_scheme(value: bytes, scheme: str) -> str:
    last = value.rpartition(b",")[2].strip().lower().decode("latin-1")
    table = _WS_SCHEMES if scheme in ("ws", "wss") else _HTTP_SCHEMES
    return table.get(last, scheme)


def _strip_port(entry: str) -> str:
    """'[2001:db8::1]:443' -> '2001:db8::1' and '192.0.2.1:443' -> '192.0.2.1'; anything else unchanged."""
    if entry[0] == "[":
        host, sep, _ = entry[1:].partition("]")
        return host if sep else entry
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        if port.isdigit():
            return host
    return entry
