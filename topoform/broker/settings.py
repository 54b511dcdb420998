"""Broker connection settings and URL redaction.

The one place that knows how the AMQP URL maps to the management URL (SPEC section 3)
and how to print a URL without its password. Every message that mentions a URL must go
through :func:`redact`. Imports no pika or requests.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit, urlunsplit

DEFAULT_URL = "amqp://guest:guest@localhost:5672/"

_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:@/\s]*):(?P<pw>[^@/\s]*)@")


def redact(text: str) -> str:
    """Replace every ``scheme://user:password@`` in ``text`` with ``scheme://user:***@``."""
    return _USERINFO.sub(lambda m: f"{m.group('scheme')}{m.group('user')}:***@", text)


@dataclass(frozen=True)
class BrokerSettings:
    """Where the broker is. ``password`` is held here and nowhere else; ``repr`` hides it."""

    url: str = DEFAULT_URL
    management_url: str | None = None
    ca_cert: str | None = None
    timeout: float = 30.0

    def __repr__(self) -> str:
        return f"BrokerSettings(url={redact(self.url)!r}, management_url={redact(self.http_base)!r})"

    # ---- AMQP side
    @property
    def amqp_parts(self):
        return urlsplit(self.url)

    @property
    def username(self) -> str:
        parts = self.amqp_parts
        return unquote(parts.username) if parts.username else "guest"

    @property
    def password(self) -> str:
        parts = self.amqp_parts
        return unquote(parts.password) if parts.password is not None else "guest"

    @property
    def amqp_host(self) -> str:
        return self.amqp_parts.hostname or "localhost"

    @property
    def amqp_port(self) -> int:
        parts = self.amqp_parts
        return parts.port or (5671 if parts.scheme == "amqps" else 5672)

    @property
    def tls(self) -> bool:
        return self.amqp_parts.scheme == "amqps"

    # ---- HTTP side
    @property
    def http_base(self) -> str:
        """The management API base URL without a trailing slash (credentials included)."""
        if self.management_url:
            return self.management_url.rstrip("/")
        parts = self.amqp_parts
        scheme, port = ("https", 15671) if parts.scheme == "amqps" else ("http", 15672)
        userinfo = ""
        if parts.username is not None:
            userinfo = parts.username + (f":{parts.password}" if parts.password is not None else "") + "@"
        host = parts.hostname or "localhost"
        if ":" in host:  # IPv6 literal
            host = f"[{host}]"
        return urlunsplit((scheme, f"{userinfo}{host}:{port}", "", "", ""))

    @property
    def http_credentials(self) -> tuple[str, str]:
        """(user, password) for the management API: its own URL's, else the AMQP URL's."""
        if self.management_url:
            parts = urlsplit(self.management_url)
            if parts.username is not None:
                return unquote(parts.username), unquote(parts.password or "")
        return self.username, self.password

    @property
    def http_base_clean(self) -> str:
        """The management base URL with no userinfo at all (for requests, which gets auth separately)."""
        parts = urlsplit(self.http_base)
        host = parts.hostname or "localhost"
        if ":" in host:
            host = f"[{host}]"
        netloc = host + (f":{parts.port}" if parts.port else "")
        return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))

    def describe(self) -> str:
        """Redacted one-line description, safe to print."""
        return f"{redact(self.url)} (management {self.http_base_clean})"


def quote_segment(name: str) -> str:
    """Percent-encode one URL path segment; ``/`` must become ``%2F`` (SEMANTICS 10.1)."""
    return quote(name, safe="")


def default_vhost_of(url: str) -> str:
    """The vhost named in an AMQP URL's path (``/`` when absent)."""
    path = urlsplit(url).path
    if not path or path == "/":
        return "/"
    return unquote(path[1:])
