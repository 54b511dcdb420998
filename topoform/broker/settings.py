"""Broker connection settings, URL checking and redaction.

The one place that knows how the AMQP URL maps to the management URL (SPEC section 3),
how credentials given without a URL combine with it, and how to print any text that may
hold a URL without its password. Every message that mentions a URL must go through
:func:`redact`. Imports no pika or requests.

Credentials, strongest first (docs/connection.md): ``--username`` / ``--password-file``,
then ``TOPOFORM_USERNAME`` / ``TOPOFORM_PASSWORD`` / ``TOPOFORM_PASSWORD_FILE``, then the
userinfo of ``--management-url`` (HTTP side only) and ``--url``, then ``guest``. The CLI
resolves the flags and variables (``cli/common.py``) and passes the result here as
``username_override`` / ``password_override``.
"""
from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from urllib.parse import quote, quote_plus, unquote, urlsplit, urlunsplit

from ..errors import UsageError

DEFAULT_URL = "amqp://guest:guest@localhost:5672/"

ENCODE_HINT = ("percent-encode special characters of the user and password (@ as %40, : as %3A, / as %2F, "
               "% as %25, # as %23, ? as %3F, space as %20), or give the password with --password-file, "
               "TOPOFORM_PASSWORD_FILE or TOPOFORM_PASSWORD")

# ----------------------------------------------------------------------------- redaction
# A scheme followed by "//" (or the typo "scheme//"). When the text after it holds userinfo,
# everything up to the LAST "@" before the next scheme on the line is hidden: passwords may
# hold "@", "/" and spaces, so only the last "@" surely ends them.
_SCHEME_START = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*:?//)")
_PORT_ONLY = re.compile(r"[^:@/\s]*:\d+(?:[/?#]\S*)?$")
_SAFE_USER = re.compile(r"[A-Za-z0-9._~%+-]*$")
_URL_BEFORE = set(" \t('\"<[{,=")

_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def register_secret(secret: str | None) -> None:
    """Remember a password so that :func:`redact` also hides it anywhere: raw, percent-encoded, escaped."""
    if not secret or len(secret) < 4 or secret == "guest":
        return
    forms = {secret, quote(secret, safe=""), quote(secret), quote_plus(secret), repr(secret.encode("utf-8"))[2:-1]}
    for _ in range(2):  # escaped once (repr, JSON) and twice (a KeyError's repr of a repr)
        forms |= {g for f in forms for g in (repr(f)[1:-1], json.dumps(f)[1:-1], json.dumps(f, ensure_ascii=False)[1:-1])}
    with _secrets_lock:
        _secrets.update(f for f in forms if len(f) >= 4)


def forget_secrets() -> None:
    """Forget every registered password (``cli.main`` does this at the start and end of each run)."""
    with _secrets_lock:
        _secrets.clear()


def _hide_userinfo(match_scheme: str, userinfo: str) -> str:
    user, sep, _ = userinfo.partition(":")
    if sep and user and "@" not in user and _SAFE_USER.match(user):
        return f"{match_scheme}{user}:***@"
    return f"{match_scheme}***@"


def _redact_line(line: str) -> str:
    out, pos = [], 0
    starts = list(_SCHEME_START.finditer(line))
    for i, m in enumerate(starts):
        if m.start() < pos:
            continue
        body_start = m.end()
        # the URL can reach no further than the next URL on the line: a scheme after a space,
        # quote or bracket ("x//" inside a password is not one)
        limit = next((n.start() for n in starts[i + 1:] if line[n.start() - 1] in _URL_BEFORE), len(line))
        segment = line[body_start:limit]
        token = re.match(r"\S*", segment).group(0)
        if "@" in token or ("@" in segment and ":" in token and not _PORT_ONLY.match(token)):
            # userinfo: it runs to the segment's LAST "@" (a password may hold "@" and even spaces).
            # A URL without userinfo (all topoform prints) never gets here.
            at = segment.rfind("@")
        else:
            continue
        out.append(line[pos:m.start()])
        out.append(_hide_userinfo(m.group("scheme"), segment[:at]))
        pos = body_start + at + 1
    out.append(line[pos:])
    return "".join(out)


def redact(text: str) -> str:
    """Hide the userinfo of every URL in ``text`` (``scheme://user:***@``) and every registered password."""
    text = str(text)
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:  # first: hiding a URL's userinfo may cut a password in two
        if secret in text:
            text = text.replace(secret, "***")
    return "\n".join(_redact_line(line) for line in text.split("\n"))


# ----------------------------------------------------------------------------- URL checks
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_BAD_USERINFO_CHARS = set(' \t\r\n"<>\\^`{|}[]') | {chr(c) for c in range(32)} | {"\x7f"}
_HOST = re.compile(r"[A-Za-z0-9._~%!$&'()*+,;=-]*$")


def check_url(url: str, *, schemes: tuple[str, ...], label: str) -> None:
    """Raise a one-line UsageError when ``url`` cannot be parsed; the message never quotes the URL.

    ``label`` names where the URL came from (``--url``, ``TOPOFORM_URL``, ...). Checks the
    scheme, that the user and password hold no character that must be percent-encoded
    (``@ : / ? #``, a space, a bad ``%`` escape), and that the port is a number.
    """
    # The messages hold no "scheme://USER:..." text: redact() would read it up to a hint's "@" as userinfo.
    wanted = " or ".join(schemes)
    if not isinstance(url, str) or not url:
        raise UsageError(f"{label} is empty", hint=f"give an {wanted} URL")
    m = _SCHEME.match(url)
    if not m:
        example = "amqp://localhost:5672/" if "amqp" in schemes else "http://localhost:15672"
        raise UsageError(f"{label} cannot be parsed as a URL: it must be an {wanted} URL such as {example}",
                         hint=ENCODE_HINT if "@" in url else "")
    scheme = m.group(1).lower()
    if scheme not in schemes:
        known = f"an {scheme} URL" if scheme in ("http", "https", "amqp", "amqps") else "a URL of another scheme"
        other = " (the management API URL goes in --management-url)" if scheme in ("http", "https") else \
            " (the AMQP URL goes in --url)" if scheme in ("amqp", "amqps") else ""
        raise UsageError(f"{label} must be an {wanted} URL, not {known}{other}")
    rest = url[m.end():]
    cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, tail = rest[:cut], rest[cut:]
    bad_userinfo = UsageError(f"{label} cannot be parsed: the user or password holds a character that must be "
                              "percent-encoded", hint=ENCODE_HINT)
    if authority.count("@") > 1 or "@" in tail:
        raise bad_userinfo
    userinfo, at, hostport = authority.rpartition("@")
    if at:
        if userinfo.count(":") > 1 or any(c in _BAD_USERINFO_CHARS for c in userinfo) \
                or re.search(r"%(?![0-9A-Fa-f]{2})", userinfo):
            raise bad_userinfo
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise UsageError(f"{label} cannot be parsed: it contains a space or a control character",
                         hint="percent-encode a space as %20")
    hint = ENCODE_HINT if at else ""
    if hostport.startswith("["):
        host, bracket, port = hostport[1:].partition("]")
        if not bracket or (port and not port.startswith(":")):
            raise UsageError(f"{label} cannot be parsed: the IPv6 address must be written [ADDRESS]:PORT", hint=hint)
        port = port[1:] if port else None
    else:
        host, colon, port = hostport.partition(":")
        if not colon:
            port = None
        if not _HOST.match(host) and not any(ord(c) > 127 for c in host):
            raise UsageError(f"{label} cannot be parsed: the host name holds characters a host name cannot have",
                             hint=hint)
    if port is not None and (not port.isascii() or not port.isdigit() or not 0 < int(port) < 65536):
        raise UsageError(f"{label} cannot be parsed: the port must be a number from 1 to 65535", hint=hint)
    try:
        urlsplit(url).port  # noqa: B018 - the same parse every later use makes
    except ValueError:
        raise UsageError(f"{label} cannot be parsed", hint=hint) from None


# ----------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class BrokerSettings:
    """Where the broker is and who connects. ``repr`` hides every password.

    ``username_override`` / ``password_override`` (from ``--username``, ``--password-file``
    or the ``TOPOFORM_*`` variables) beat the userinfo of both URLs.
    """

    url: str = DEFAULT_URL
    management_url: str | None = None
    ca_cert: str | None = None
    timeout: float = 30.0
    username_override: str | None = None
    password_override: str | None = None

    def __post_init__(self):
        check_url(self.url, schemes=("amqp", "amqps"), label="the AMQP URL")
        if self.management_url:
            check_url(self.management_url, schemes=("http", "https"), label="the management URL")
        for secret in (self.password, self.http_credentials[1]):
            if secret != self.username:
                register_secret(secret)

    def __repr__(self) -> str:
        return f"BrokerSettings(url={redact(self.url)!r}, management_url={redact(self.http_base)!r})"

    # ---- AMQP side
    @property
    def amqp_parts(self):
        return urlsplit(self.url)

    @property
    def username(self) -> str:
        if self.username_override is not None:
            return self.username_override
        parts = self.amqp_parts
        return unquote(parts.username) if parts.username else "guest"

    @property
    def password(self) -> str:
        if self.password_override is not None:
            return self.password_override
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
        """(user, password) for the management API: the overrides, its own URL's, else the AMQP side's."""
        user, password = self.username, self.password
        if self.management_url:
            parts = urlsplit(self.management_url)
            if parts.username is not None:
                user, password = unquote(parts.username), unquote(parts.password or "")
        if self.username_override is not None:
            user = self.username_override
        if self.password_override is not None:
            password = self.password_override
        return user, password

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


def tls_failure_reason(text: str) -> str:
    """A short reason for a TLS failure from an ``ssl`` (or requests) error text; never quotes the text."""
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text.lower():
        detail = "certificate verification failed"
        for marker in ("self-signed certificate in certificate chain", "self signed certificate in certificate chain",
                       "self-signed certificate", "self signed certificate", "unable to get local issuer certificate",
                       "certificate has expired", "Hostname mismatch", "IP address mismatch"):
            if marker.lower() in text.lower():
                detail += f" ({marker.lower()})"
                break
        return detail
    if "WRONG_VERSION_NUMBER" in text or "wrong version number" in text or "record layer failure" in text.lower():
        return "the server does not speak TLS on this port"
    if "Could not find a suitable TLS CA certificate bundle" in text or "invalid path" in text.lower():
        return "the CA certificate file cannot be read"
    return "TLS handshake failed"


def quote_segment(name: str) -> str:
    """Percent-encode one URL path segment; ``/`` must become ``%2F`` (SEMANTICS 10.1)."""
    return quote(name, safe="")


def default_vhost_of(url: str) -> str:
    """The vhost named in an AMQP URL's path (``/`` when absent)."""
    path = urlsplit(url).path
    if not path or path == "/":
        return "/"
    return unquote(path[1:])
