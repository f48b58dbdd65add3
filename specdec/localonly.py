"""Which browsers the app answers: a server bound to loopback serves only pages addressed to loopback.

A server on 127.0.0.1 is still reachable from any web page the user visits through DNS rebinding: the
attacker's name resolves to 127.0.0.1, the browser sends `Host: evil.example:8501`, and Streamlit's
websocket check (Origin compared with Host) passes. The Host header is the one thing that page cannot
forge, so a loopback-bound app refuses any Host that is not a loopback name. A user who binds to
another address (`--server.address 0.0.0.0`) has opted in to being reached by name and is not checked.
"""

from __future__ import annotations

import ipaddress

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def host_name(host_header: str) -> str:
    """'localhost:8501' → 'localhost'; '[::1]:8501' → '::1'; lower-cased, port and brackets removed."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host[1:]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_loopback(name: str) -> bool:
    """localhost, *.localhost (RFC 6761 keeps them on this machine) or a loopback IP literal."""
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_allowed(host_header: str | None, bind_address: str | None) -> bool:
    """True when a request with this Host header may see the app served on bind_address.

    No header (an in-process test session) is allowed; an unbound or wildcard server was opened to the
    network on purpose, so every name is allowed there."""
    if not host_header or not bind_address or not is_loopback(host_name(bind_address)):
        return True
    return is_loopback(host_name(host_header))
