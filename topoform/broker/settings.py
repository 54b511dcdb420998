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

Several endpoints (a cluster, docs/clusters.md): ``urls`` / ``management_urls`` hold every
node's URL (:func:`split_urls` reads the flags), ``url`` / ``management_url`` the one to try
first. The clients (``http.py``, ``amqp.connect``) use the endpoint that answered last and
move on to the next when it stops answering (:meth:`BrokerSettings.amqp_order`, ``use_amqp``);
with as many management URLs as AMQP URLs (or none, derived from each) entry *i* of both lists
is one node, and a move on either side moves both, so reads follow writes on the same node.
"""
from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field, replace
from typing import Any, Iterable
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
    if port is not None and port.isascii() and port.isdigit() and not 0 < int(port) < 65536:
        # digits only: a port, not a piece of a password that needs encoding (shown, no encoding hint)
        raise UsageError(f"{label}: the port {int(port)} is out of range (a port is a number from 1 to 65535)")
    if port is not None and (not port.isascii() or not port.isdigit()):
        raise UsageError(f"{label} cannot be parsed: the port must be a number from 1 to 65535", hint=hint)
    try:
        urlsplit(url).port  # noqa: B018 - the same parse every later use makes
    except ValueError:
        raise UsageError(f"{label} cannot be parsed", hint=hint) from None


# ----------------------------------------------------------------------------- endpoint lists
# A comma splits a list only where a new URL begins ("scheme://"), so a comma in a password
# needs no encoding; a comma anywhere else in an entry's host is an error.
_LIST_SEP = re.compile(r"\s*,\s*(?=[A-Za-z][A-Za-z0-9+.-]*://)")
LIST_HINT = "separate the URLs with commas or repeat the flag; each entry is a whole URL such as amqp://host1:5672/"


def split_urls(values: str | Iterable[str] | None, *, schemes: tuple[str, ...], label: str) -> tuple[str, ...]:
    """The URLs of ``--url`` / ``--management-url`` (repeatable) or their variable, each value a
    comma-separated list; every entry checked (:func:`check_url`). Duplicates are dropped.

    Raises a one-line UsageError that never quotes a URL: an empty list or entry, a stray comma,
    an entry that is not a whole URL.
    """
    if values is None:
        return ()
    items = [values] if isinstance(values, str) else list(values)
    found: list[str] = []
    for value in items:
        if not isinstance(value, str) or not value.strip():
            raise UsageError(f"{label} is empty", hint=LIST_HINT)
        entries = _LIST_SEP.split(value.strip())
        for entry in entries:
            where = f"{label} (entry {len(found) + 1})" if len(items) > 1 or len(entries) > 1 else label
            if not entry or entry.startswith(",") or entry.endswith(","):
                raise UsageError(f"{where} has an empty entry: a stray comma", hint=LIST_HINT)
            check_url(entry, schemes=schemes, label=where)
            netloc = urlsplit(entry).netloc.rpartition("@")[2]
            if "," in netloc:
                raise UsageError(f"{where} cannot be parsed: a comma in the host; a list must give every "
                                 "endpoint as a whole URL", hint=LIST_HINT)
            if entry not in found:
                found.append(entry)
    return tuple(found)


class _Pin:
    """Which endpoint each side (``amqp``, ``http``) uses now; shared by every client of one settings."""

    def __init__(self, amqp: int, http: int, paired: bool):
        self.index = {"amqp": amqp, "http": http}
        self.paired = paired
        self.lock = threading.Lock()

    def use(self, side: str, i: int) -> None:
        with self.lock:
            self.index[side] = i
            if self.paired:
                self.index["amqp"] = self.index["http"] = i


def _derived_http_base(url: str) -> str:
    """The management base URL that goes with an AMQP URL: its host and userinfo on 15672 (https/15671)."""
    parts = urlsplit(url)
    scheme, port = ("https", 15671) if parts.scheme == "amqps" else ("http", 15672)
    userinfo = ""
    if parts.username is not None:
        userinfo = parts.username + (f":{parts.password}" if parts.password is not None else "") + "@"
    host = parts.hostname or "localhost"
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    return urlunsplit((scheme, f"{userinfo}{host}:{port}", "", "", ""))


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
    urls: tuple[str, ...] = ()  # every AMQP endpoint (a cluster's nodes); url is the one tried first
    management_urls: tuple[str, ...] = ()  # every management endpoint ((): derived from each AMQP URL)
    _pin: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self):
        urls = tuple(self.urls) or (self.url,)
        if self.url not in urls:
            if self.url == DEFAULT_URL and self.urls:  # built from the lists alone
                object.__setattr__(self, "url", urls[0])
            else:  # dataclasses.replace(settings, url=OTHER): that one endpoint
                urls = (self.url,)
        mgmts = tuple(self.management_urls)
        if self.management_url is None and mgmts:
            object.__setattr__(self, "management_url", mgmts[0])
        elif not self.management_url:
            mgmts = ()
        elif self.management_url not in mgmts:
            mgmts = (self.management_url,)
        object.__setattr__(self, "urls", urls)
        object.__setattr__(self, "management_urls", mgmts)
        several = len(urls) > 1
        for i, u in enumerate(urls):
            check_url(u, schemes=("amqp", "amqps"), label=f"the AMQP URL (entry {i + 1})" if several else "the AMQP URL")
        for i, m in enumerate(mgmts):
            check_url(m, schemes=("http", "https"),
                      label=f"the management URL (entry {i + 1})" if len(mgmts) > 1 else "the management URL")
        if len(mgmts) > 1 and several and len(mgmts) != len(urls):
            raise UsageError(f"{len(mgmts)} management URLs for {len(urls)} AMQP URLs: give one management URL per "
                             "AMQP URL, in the same order (one node each), or a single one (a load balancer)")
        paired = not mgmts or len(mgmts) == len(urls)
        http_start = mgmts.index(self.management_url) if mgmts else urls.index(self.url)
        object.__setattr__(self, "_pin", _Pin(urls.index(self.url), http_start, paired and several))
        for i in range(len(urls)):
            one = self if not several else self.amqp_endpoint(i)
            if one.password != one.username:
                register_secret(one.password)
        for i in range(len(self.http_bases)):
            user, secret = (self if len(self.http_bases) == 1 else self.http_endpoint(i)).http_credentials
            if secret != user:
                register_secret(secret)

    def __repr__(self) -> str:
        if len(self.urls) > 1 or len(self.http_bases) > 1:
            return (f"BrokerSettings(urls={[redact(u) for u in self.urls]!r}, "
                    f"management_urls={[redact(b) for b in self.http_bases]!r})")
        return f"BrokerSettings(url={redact(self.url)!r}, management_url={redact(self.http_base)!r})"

    # ---- several endpoints
    @property
    def http_bases(self) -> tuple[str, ...]:
        """Every management base URL (credentials included): the given ones, else one per AMQP URL."""
        if self.management_urls:
            return tuple(m.rstrip("/") for m in self.management_urls)
        return tuple(_derived_http_base(u) for u in self.urls)

    def _order(self, side: str, n: int) -> list[int]:
        start = self._pin.index[side] % n
        return [(start + k) % n for k in range(n)]

    def amqp_order(self) -> list[int]:
        """Indexes into ``urls``, the endpoint in use first, then the others in list order."""
        return self._order("amqp", len(self.urls))

    def http_order(self) -> list[int]:
        """Indexes into :attr:`http_bases`, the endpoint in use first."""
        return self._order("http", len(self.http_bases))

    def use_amqp(self, i: int) -> None:
        """Endpoint ``i`` answered: use it from now on (and its management URL, when paired)."""
        self._pin.use("amqp", i)

    def use_http(self, i: int) -> None:
        self._pin.use("http", i)

    def amqp_endpoint(self, i: int) -> "BrokerSettings":
        """Settings for AMQP endpoint ``i`` alone (its own userinfo; the overrides still win)."""
        if len(self.urls) == 1:
            return self
        return replace(self, url=self.urls[i], urls=(), management_url=None, management_urls=())

    def http_endpoint(self, i: int) -> "BrokerSettings":
        """Settings for management endpoint ``i`` alone (credentials as :attr:`http_credentials` would give)."""
        if len(self.http_bases) == 1:
            return self
        paired = len(self.http_bases) == len(self.urls)
        url = self.urls[i] if paired else self.url
        return replace(self, url=url, urls=(), management_url=self.management_urls[i] if self.management_urls else None,
                       management_urls=())

    def current(self) -> "BrokerSettings":
        """Settings for the endpoints in use now (one AMQP URL, one management URL)."""
        if len(self.urls) == 1 and len(self.http_bases) == 1:
            return self
        a = self.amqp_endpoint(self._pin.index["amqp"] % len(self.urls))
        h = self.http_endpoint(self._pin.index["http"] % len(self.http_bases))
        return replace(a, management_url=h.http_base)

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
        return _derived_http_base(self.url)

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
        """Redacted one-line description, safe to print (the endpoint in use, of how many)."""
        now = self.current()
        more = len(self.urls) > 1 or len(self.http_bases) > 1
        of = f"; one of {max(len(self.urls), len(self.http_bases))} endpoints" if more else ""
        return f"{redact(now.url)} (management {now.http_base_clean}{of})"


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
