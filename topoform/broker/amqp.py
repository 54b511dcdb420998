"""AMQP 0-9-1 over pika: connections, typed argument encoding, pipelined operations.

Owns everything topoform sends over AMQP to change a broker's topology: exchange and
queue declares, binds and unbinds (queue and exchange destinations), deletes. Must not
import planner, apply or cli.

Broker quirks handled here (RABBITMQ-SEMANTICS.md):

* Integers in argument tables are sent as AMQP ``long`` (section 1.3 and 9): that is
  what the HTTP API and the definitions import produce, so AMQP-created, HTTP-created
  and import-created bindings are the same binding. Nested tables and arrays too.
* pika cannot encode ``float`` (Appendix B); :func:`install_double_encoding` teaches
  its encoder the AMQP ``double`` (``d``). ``Decimal`` is refused: the broker crashes
  (541, a *connection* error) when it compares one (section 1.3).
* Channel errors (403, 404, 405, 406) close only the channel; the wrapper reopens it
  and raises :class:`AmqpError` naming the object and quoting the broker's reply
  (section 3.2). Connection errors (503, 541, a lost socket) end every channel.

Pipelining: pika allows one outstanding synchronous method per channel, so
:class:`Session` opens several channels on one connection and keeps each busy, driving
pika's I/O loop until every reply has arrived. Each channel is a separate process on
the broker, so the broker works on them in parallel too.
"""
from __future__ import annotations

import logging
import os
import re
import socket
import ssl
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable, Iterable, Mapping

import pika
import pika.data
from pika import exceptions as pex
from pika.adapters.utils.connection_workflow import AMQPConnectorException
from pika.compat import long

from ..errors import BrokerError
from .amqp_frames import RAW_METHODS, raw_frame, raw_publish  # noqa: F401 - raw_frame, raw_publish are part of this module's API
from .settings import BrokerSettings, redact, tls_failure_reason

# pika logs every broker refusal as a WARNING; without a handler Python's last-resort
# handler would print those to stderr. topoform reports refusals itself, once.
logging.getLogger("pika").addHandler(logging.NullHandler())

# Channel-level reply codes (soft errors) and the names the broker gives them.
REPLY_NAMES = {
    311: "CONTENT_TOO_LARGE", 312: "NO_ROUTE", 313: "NO_CONSUMERS", 320: "CONNECTION_FORCED",
    402: "INVALID_PATH", 403: "ACCESS_REFUSED", 404: "NOT_FOUND", 405: "RESOURCE_LOCKED",
    406: "PRECONDITION_FAILED", 501: "FRAME_ERROR", 502: "SYNTAX_ERROR", 503: "COMMAND_INVALID",
    504: "CHANNEL_ERROR", 505: "UNEXPECTED_FRAME", 506: "RESOURCE_ERROR", 530: "NOT_ALLOWED",
    540: "NOT_IMPLEMENTED", 541: "INTERNAL_ERROR",
}


# --------------------------------------------------------------------------- encoding
_DOUBLE_INSTALLED = False


def install_double_encoding() -> None:
    """Let pika encode Python ``float`` as AMQP ``double`` (pika raises otherwise), and decode it back.

    pika's ``encode_value``/``decode_value`` recurse through the module globals, so
    wrapping them also covers floats nested in tables and arrays. Idempotent; it
    changes pika for the whole process (only cases pika refused or got wrong).
    """
    global _DOUBLE_INSTALLED
    if _DOUBLE_INSTALLED:
        return
    original = pika.data.encode_value

    def encode_value(pieces, value):
        if isinstance(value, float):
            pieces.append(struct.pack(">cd", b"d", value))
            return 9
        return original(pieces, value)

    original_decode = pika.data.decode_value

    def decode_value(encoded, offset):
        # pika decodes float and double as integers (``long(...)``), truncating 1.5 to 1;
        # migrations copy message headers through pika, so read them faithfully.
        kind = encoded[offset:offset + 1]
        if kind == b"d":
            return struct.unpack_from(">d", encoded, offset + 1)[0], offset + 9
        if kind == b"f":
            return struct.unpack_from(">f", encoded, offset + 1)[0], offset + 5
        return original_decode(encoded, offset)

    pika.data.encode_value = encode_value
    pika.data.decode_value = decode_value
    _DOUBLE_INSTALLED = True


install_double_encoding()


class EncodingError(BrokerError):
    """An argument value that topoform refuses to send over AMQP."""

    code = "amqp-encoding"


def encode_args(args: Mapping[str, Any] | None, *, int_type: type = long, where: str = "arguments") -> dict:
    """A plain dict ready for pika, with every integer (nested too) as ``int_type``.

    ``int_type`` is :class:`pika.compat.long` by default (SEMANTICS 1.3); pass ``int``
    to get the 32-bit ``signedint`` width a plain pika client would have sent (used to
    unbind bindings created that way). Raises :class:`EncodingError` for ``Decimal`` and
    for types AMQP tables cannot carry.
    """
    return {str(k): _encode_value(v, int_type, f"{where}.{k}") for k, v in (args or {}).items()}


def _encode_value(value: Any, int_type: type, where: str) -> Any:
    if value is None or isinstance(value, (bool, str, bytes, float)):
        return value
    if isinstance(value, int):
        if not -2 ** 63 <= value < 2 ** 63:  # pika would fail in struct.pack ("int too large to convert")
            raise EncodingError(f"{where}: {value} does not fit the signed 64-bit integers AMQP tables carry")
        if int_type is int and -2 ** 31 <= value < 2 ** 31:
            return int(value)
        return long(value)
    if isinstance(value, bytearray):
        return bytes(value)
    if isinstance(value, Decimal):
        raise EncodingError(f"{where}: decimal values are not sent (the broker fails comparing them); "
                            "use an integer or a float")
    if isinstance(value, Mapping):
        return {str(k): _encode_value(v, int_type, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode_value(v, int_type, f"{where}[{i}]") for i, v in enumerate(value)]
    raise EncodingError(f"{where}: values of type {type(value).__name__} cannot be sent in AMQP arguments")


def has_integers(value: Any) -> bool:
    """True when an argument table holds an integer anywhere (bools excluded)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    if isinstance(value, Mapping):
        return any(has_integers(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(has_integers(v) for v in value)
    return False


# --------------------------------------------------------------------------- errors
class AmqpError(BrokerError):
    """The broker refused an operation. ``subject`` names the object, ``reply_text`` is the broker's own words."""

    code = "broker-refused"

    def __init__(self, subject: str, reply_code: int, reply_text: str, *, hint: str = ""):
        self.subject = subject
        self.reply_code = reply_code
        self.reply_text = reply_text
        super().__init__(f"{subject}: {format_reply(reply_code, reply_text)}",
                         hint=hint or refusal_hint(reply_code, reply_text or ""))


def refusal_hint(reply_code: int, reply_text: str) -> str:
    """What to do about a refused operation, from the broker's reply; "" when nothing useful is known."""
    if reply_code == 403:
        who = re.search(r"in vhost '(.*)' refused for user '(.*)'", reply_text)
        where = f"user '{who.group(2)}' in vhost '{who.group(1)}'" if who else "the user"
        see = f" (rabbitmqctl list_user_permissions '{who.group(2)}')" if who else ""
        return (f"check the permissions of {where}{see}: declaring or deleting needs configure on the name, "
                f"a binding read on its source exchange and write on its destination")
    if reply_code == 404:
        return "an object it needs is not on the broker: deleted since the plan was made?"
    if reply_code == 405:
        return "another connection holds this exclusive queue: it cannot be changed while that connection is open"
    if reply_code == 406 and "inequivalent arg" in reply_text:
        return ("the object on the broker differs from what the plan saw (changed since it was made?); a change "
                "the broker refuses in place needs --migrate")
    limit = reached_limit(reply_code, reply_text)
    if limit is not None:
        return limit_hint(limit)  # no user from the text: 4.0.5 names its node in the user's place
    return ""


def limit_hint(limit: ReachedLimit, user: str | None = None, vhost: str | None = None) -> str:
    """The one wording of what to do about a reached ``max-channels`` or ``max-connections``:
    the setting, whose it is, the rabbitmqctl command that raises it (with the user or vhost
    when known) and the other way out."""
    setting = "max-channels" if limit.code == "channel-limit" else "max-connections"
    things = "channels" if limit.code == "channel-limit" else "connections"
    value = f"'{{\"{setting}\": N}}'"
    if limit.of_user:
        setter = f"rabbitmqctl set_user_limits '{user}' {value}" if user else "rabbitmqctl set_user_limits"
    else:
        setter = f"rabbitmqctl set_vhost_limits -p '{vhost}' {value}" if vhost else "rabbitmqctl set_vhost_limits"
    return (f"raise the {'user' if limit.of_user else 'vhost'}'s {setting} ({setter}) or close other {things} of "
            f"{limit.whose(user, vhost)}")


class ConnectionLost(BrokerError):
    """The connection dropped (socket lost, broker restart, connection forced); worth retrying."""

    code = "connection-lost"


def format_reply(code: int, text: str) -> str:
    """The broker's reply as it would print it: ``406 PRECONDITION_FAILED - inequivalent arg ...``."""
    text = text or ""
    name = REPLY_NAMES.get(code, "")
    if name and text.startswith(name):
        return f"{code} {text}"
    return f"{code} {name + ' - ' if name else ''}{text}".strip()


# --------------------------------------------------------------------------- connections
def holder_name(purpose: str = "apply") -> str:
    """A connection name that tells an operator who this is: ``topoform apply pid=123 host=h``."""
    return f"topoform {purpose} pid={os.getpid()} host={socket.gethostname()}"


def connection_parameters(settings: BrokerSettings, vhost: str, *, name: str, heartbeat: int | None = 60,
                          keepalive: bool = False) -> pika.ConnectionParameters:
    """pika parameters for ``vhost`` from the settings (TLS with ``ca_cert`` for amqps).

    pika sends the PLAIN credentials as UTF-8 (``pika.compat.as_bytes``), which is what the
    broker expects, so non-ASCII passwords work as given. An unreadable ``--ca-cert`` is a
    :class:`BrokerError`.
    """
    ssl_options = None
    if settings.tls:
        try:
            context = ssl.create_default_context(cafile=settings.ca_cert) if settings.ca_cert \
                else ssl.create_default_context()
        except (OSError, ssl.SSLError):
            raise BrokerError(f"cannot read the CA certificate file {settings.ca_cert!r}", code="tls",
                              hint="--ca-cert (or TOPOFORM_CA_CERT) names a PEM file") from None
        ssl_options = pika.SSLOptions(context, server_hostname=settings.amqp_host)
    tcp_options = {"TCP_KEEPIDLE": 20, "TCP_KEEPINTVL": 5, "TCP_KEEPCNT": 4} if keepalive else None
    return pika.ConnectionParameters(
        host=settings.amqp_host, port=settings.amqp_port, virtual_host=vhost,
        credentials=pika.PlainCredentials(settings.username, settings.password),
        ssl_options=ssl_options, heartbeat=heartbeat, connection_attempts=1,
        socket_timeout=settings.timeout, stack_timeout=settings.timeout,
        blocked_connection_timeout=settings.timeout, tcp_options=tcp_options,
        client_properties={"connection_name": name, "product": "topoform"},
    )


def scrub(text: str, settings: BrokerSettings) -> str:
    """Redact URLs and any literal occurrence of the password (pika messages may echo parameters)."""
    text = redact(str(text))
    pw = settings.password
    if pw and len(pw) >= 4 and pw != settings.username:
        text = text.replace(pw, "***")
    return text


def _where(settings: BrokerSettings, vhost: str) -> str:
    scheme = "amqps" if settings.tls else "amqp"
    return f"{scheme}://{settings.amqp_host}:{settings.amqp_port} vhost '{vhost}'"


_CREDENTIALS_HINT = "check the user and password (--username, --password-file, TOPOFORM_PASSWORD, or the userinfo of --url)"


def connect(settings: BrokerSettings, vhost: str, *, name: str | None = None, heartbeat: int | None = 60,
            keepalive: bool = False) -> pika.BlockingConnection:
    """Open a blocking connection to ``vhost``; failures become one-line :class:`BrokerError`.

    Each failure has its own code and message, none with the password (observed on 3.10, 4.0, 4.3):

    * ``unreachable``     connection refused, unknown host, network unreachable (host:port named)
    * ``timeout``         no TCP connect, TLS handshake or AMQP handshake within ``--timeout``
    * ``tls``             certificate verification failed (hint ``--ca-cert``), or no TLS on the port
    * ``auth-failed``     403 ACCESS_REFUSED at login: wrong user or password
    * ``vhost-not-found`` 530 NOT_ALLOWED "vhost V not found"
    * ``access-refused``  530 NOT_ALLOWED "access to vhost 'V' refused for user 'U'"
    * ``connection-limit`` 530 NOT_ALLOWED "... connection limit (N) is reached": the vhost's
      or the user's ``max-connections``

    With several AMQP URLs (a cluster) the endpoint in use is tried first; one that is
    ``unreachable`` or times out passes to the next, which is then used from now on (the
    management side moves with it when the lists are paired). Any other failure is raised at
    once: a wrong password is wrong on every node.
    """
    if len(settings.urls) > 1:
        return _connect_anywhere(settings, vhost, name=name, heartbeat=heartbeat, keepalive=keepalive)
    params = connection_parameters(settings, vhost, name=name or holder_name(), heartbeat=heartbeat,
                                   keepalive=keepalive)
    where = _where(settings, vhost)
    try:
        return pika.BlockingConnection(params)
    except (pex.AMQPError, AMQPConnectorException, OSError, EOFError) as exc:  # ssl.SSLError is an OSError
        error = connection_error(exc, settings, vhost, where)
    raise error


FAILOVER_CODES = frozenset({"unreachable", "timeout"})


def _connect_anywhere(settings: BrokerSettings, vhost: str, **kw) -> pika.BlockingConnection:
    order = settings.amqp_order()
    last: BrokerError | None = None
    for i in order:
        try:
            connection = connect(settings.amqp_endpoint(i), vhost, **kw)
        except BrokerError as exc:
            if exc.code not in FAILOVER_CODES:
                raise
            last = exc
            continue
        if i != order[0]:
            settings.use_amqp(i)
        return connection
    assert last is not None
    tried = ", ".join(_where(settings.amqp_endpoint(i), vhost).split(" vhost ", 1)[0] for i in order)
    raise BrokerError(f"none of the {len(order)} AMQP endpoints answered for vhost '{vhost}' ({tried}); "
                      f"last: {last.message}", code=last.code, hint=last.hint)


@dataclass(frozen=True)
class ReachedLimit:
    """A 530 that is a user's or vhost's limit: ``code`` is ``"channel-limit"`` (a user's
    ``max-channels``) or ``"connection-limit"`` (``max-connections``, of the user when
    ``of_user`` else of the vhost); ``number`` is the limit the broker printed."""
    code: str
    of_user: bool
    number: str

    def whose(self, user: str | None = None, vhost: str | None = None) -> str:
        """Whose limit it is, by name when known: ``user 'ci'``, ``vhost 'orders'``, ``the user``."""
        if self.of_user:
            return f"user '{user}'" if user else "the user"
        return f"vhost '{vhost}'" if vhost else "the vhost"


# 3.10.8 and 4.0.5 "... limit of (5)", 4.3.6 "... limit of 5"; 4.0.5 names its node, not the user
_CHANNEL_LIMIT = re.compile(r"number of channels opened for user .* has reached the maximum allowed user "
                            r"limit of \(?(\d+)\)?")
_CONNECTION_LIMIT = re.compile(r"(user )?connection limit \((\d+)\) is reached")


def reached_limit(reply_code: int | None, reply_text: str) -> ReachedLimit | None:
    """The limit a 530 reports (see :class:`ReachedLimit`), else None."""
    if reply_code != 530:
        return None
    found = _CHANNEL_LIMIT.search(reply_text)
    if found:
        return ReachedLimit("channel-limit", True, found.group(1))
    found = _CONNECTION_LIMIT.search(reply_text)
    if found:
        return ReachedLimit("connection-limit", bool(found.group(1)), found.group(2))
    return None


def limit_code(reply_code: int | None, reply_text: str) -> str | None:
    """``"channel-limit"`` or ``"connection-limit"`` when a 530 is a user's or vhost's limit
    (``max-channels``, ``max-connections``), else None: a refusal that waiting can cure."""
    limit = reached_limit(reply_code, reply_text)
    return limit.code if limit else None


def _reply_in(text: str) -> tuple[int | None, str]:
    """The broker's reply code and text in pika's message, e.g. ``(530) "NOT_ALLOWED - access to
    vhost 'v' refused for user 'u': connection limit (3) is reached"``: the text runs to the
    quote that opened it (it holds the other kind of quote), or to the end."""
    found = re.search(r"\((\d{3})\)\s*(?:\"([A-Z_]+ - [^\"]*)\"|'([A-Z_]+ - [^']*)'|([A-Z_]+ - [^|]*))", text)
    if not found:
        return None, ""
    return int(found.group(1)), next(g for g in found.groups()[1:] if g is not None).strip()


def connection_error(exc: BaseException, settings: BrokerSettings, vhost: str, where: str | None = None) -> BrokerError:
    """The one-line :class:`BrokerError` for an exception pika raised while connecting."""
    where = where or _where(settings, vhost)
    server = where.split(" vhost ", 1)[0]
    user = settings.username
    chain = _exception_chain(exc)
    text = " | ".join(str(e) for e in chain)
    reply_code, reply_text = _reply_in(text)
    reply = reply_code is not None
    said = f" ({scrub(format_reply(reply_code, reply_text), settings)})" if reply else ""
    if any(isinstance(e, (pex.ProbableAuthenticationError, pex.AuthenticationError)) for e in chain) \
            or reply_code == 403:
        return BrokerError(f"the broker at {server} refused the credentials of user '{user}'"
                           f"{said or ' (403 ACCESS_REFUSED)'}", hint=_CREDENTIALS_HINT, code="auth-failed")
    if any(isinstance(e, pex.ProbableAccessDeniedError) for e in chain) or reply_code == 530:
        limit = reached_limit(reply_code, reply_text)
        if limit and limit.code == "connection-limit":
            return BrokerError(f"the broker at {server} refused a connection to vhost '{vhost}': the connection "
                               f"limit of {limit.whose(user, vhost)} ({limit.number}) is reached{said}",
                               code="connection-limit",
                               hint=f"an apply holds a connection per vhost for its lock and at least one for its "
                                    f"work, plus one per queue migration running at once (--parallel): "
                                    f"{limit_hint(limit, user, vhost)}")
        if "not found" in reply_text:
            return BrokerError(f"vhost '{vhost}' does not exist on {server}{said}", code="vhost-not-found",
                               hint="create it first (apply creates the vhosts of the files), or check --vhost")
        return BrokerError(f"user '{user}' may not access vhost '{vhost}' at {server}{said or ' (530 NOT_ALLOWED)'}",
                           hint=f"grant the user permissions on the vhost (rabbitmqctl set_permissions -p "
                                f"'{vhost}' '{user}' '.*' '.*' '.*')", code="access-refused")
    if isinstance(exc, pex.ConnectionClosedByBroker):
        return BrokerError(f"{where}: the broker refused the connection: "
                           f"{scrub(format_reply(exc.reply_code, exc.reply_text), settings)}", code="access-refused")
    ssl_error = next((e for e in chain if isinstance(e, ssl.SSLError)), None)
    if ssl_error is not None:
        reason = tls_failure_reason(str(ssl_error))
        if "does not speak TLS" in reason:
            hint = "is this port serving TLS? use amqp:// for a plain AMQP port (5672)"
        elif "verification" in reason:
            hint = "pass the CA that signed the broker's certificate with --ca-cert (or TOPOFORM_CA_CERT)"
        else:
            hint = "check that the port serves AMQP over TLS, and --ca-cert"
        return BrokerError(f"TLS failure connecting to {server}: {reason}", code="tls", hint=hint)
    if any(isinstance(e, (socket.timeout, TimeoutError)) or "Timeout" in type(e).__name__
           or "timed out" in str(e).lower() for e in chain):
        stage = "the AMQP handshake" if "handshake" in text.lower() else \
            "the TLS handshake" if "transport" in text.lower() and settings.tls else "the connection"
        return BrokerError(f"{server} did not answer within {settings.timeout:g}s ({stage} timed out)",
                           code="timeout", hint="is this the broker's AMQP port? check --url, or raise --timeout")
    if any(isinstance(e, ConnectionRefusedError) or "refused" in str(e).lower() for e in chain):
        return BrokerError(f"cannot connect to {server}: connection refused", code="unreachable",
                           hint="is RabbitMQ running, and is the host and port in --url / TOPOFORM_URL right?")
    if any(isinstance(e, socket.gaierror) for e in chain):
        return BrokerError(f"cannot connect to {server}: unknown host '{settings.amqp_host}'", code="unreachable",
                           hint="check the host name in --url / TOPOFORM_URL")
    if any(isinstance(e, (pex.StreamLostError, ConnectionResetError, EOFError)) or "reset" in str(e).lower()
           or "eof" in str(e).lower() for e in chain):
        return BrokerError(f"cannot connect to {server}: the server closed the connection during the handshake",
                           code="unreachable", hint="is this the broker's AMQP port (not the management port)?")
    reason = _connection_failure_reason(exc)
    return BrokerError(f"cannot connect to {where}: {scrub(reason, settings)}",
                       hint="is RabbitMQ running, and are --url / TOPOFORM_URL right?", code="unreachable")


def _exception_chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and every exception pika wrapped in it (args, ``exceptions``, ``exception``, causes)."""
    seen: list[BaseException] = []
    todo = [exc]
    while todo and len(seen) < 20:
        e = todo.pop(0)
        if any(e is s for s in seen):
            continue
        seen.append(e)
        for attr in ("exceptions",):
            inner = getattr(e, attr, None)
            if isinstance(inner, (list, tuple)):
                todo.extend(x for x in inner if isinstance(x, BaseException))
        inner = getattr(e, "exception", None)
        if isinstance(inner, BaseException):
            todo.append(inner)
        todo.extend(a for a in getattr(e, "args", ()) if isinstance(a, BaseException))
        for linked in (e.__cause__, e.__context__):
            if isinstance(linked, BaseException):
                todo.append(linked)
    return seen


def _connection_failure_reason(exc: BaseException) -> str:
    """The innermost useful reason pika's connection workflow recorded."""
    inner = getattr(exc, "exceptions", None)
    if inner:
        exc = inner[-1]
        deeper = getattr(exc, "exception", None)
        if deeper is not None:
            exc = deeper
    text = str(exc) or type(exc).__name__
    if isinstance(exc, ConnectionRefusedError) or "refused" in text.lower():
        return "connection refused"
    return text.splitlines()[0] if text else type(exc).__name__


# --------------------------------------------------------------------------- operations
@dataclass
class Op:
    """One AMQP method to send. ``method`` is a pika ``Channel`` method name; ``token`` is the caller's."""

    method: str
    kwargs: dict
    subject: str
    token: Any = None


def op_declare_exchange(name: str, type: str, *, durable: bool, auto_delete: bool, internal: bool,
                        arguments: Mapping | None, vhost: str = "", token: Any = None) -> Op:
    return Op("exchange_declare", dict(exchange=name, exchange_type=type, durable=durable, auto_delete=auto_delete,
                                       internal=internal, arguments=encode_args(arguments)),
              subject=f"exchange '{name}'" + _in(vhost), token=token)


def op_declare_queue(name: str, *, durable: bool, auto_delete: bool, arguments: Mapping | None,
                     vhost: str = "", token: Any = None) -> Op:
    # exclusive=False always: topoform never declares exclusive queues (SPEC section 2).
    return Op("queue_declare", dict(queue=name, durable=durable, exclusive=False, auto_delete=auto_delete,
                                    arguments=encode_args(arguments)),
              subject=f"queue '{name}'" + _in(vhost), token=token)


def op_bind(source: str, destination: str, destination_type: str, routing_key: str, arguments: Mapping | None,
            *, int_type: type = long, vhost: str = "", token: Any = None, unbind: bool = False) -> Op:
    args = encode_args(arguments, int_type=int_type)
    verb = "unbind" if unbind else "bind"
    subject = f"binding '{source}' -> {destination_type} '{destination}' [{routing_key}]" + _in(vhost)
    if destination_type == "exchange":
        return Op(f"exchange_{verb}", dict(destination=destination, source=source, routing_key=routing_key,
                                            arguments=args), subject, token)
    return Op(f"queue_{verb}", dict(queue=destination, exchange=source, routing_key=routing_key, arguments=args),
              subject, token)


def op_delete_queue(name: str, *, if_empty: bool, if_unused: bool, vhost: str = "", token: Any = None) -> Op:
    return Op("queue_delete", dict(queue=name, if_empty=if_empty, if_unused=if_unused),
              subject=f"queue '{name}'" + _in(vhost), token=token)


def op_delete_exchange(name: str, *, if_unused: bool = False, vhost: str = "", token: Any = None) -> Op:
    return Op("exchange_delete", dict(exchange=name, if_unused=if_unused),
              subject=f"exchange '{name}'" + _in(vhost), token=token)


def _in(vhost: str) -> str:
    return f" in vhost '{vhost}'" if vhost else ""


@dataclass
class BatchResult:
    """What happened to a batch: ops done (in completion order), the failures, ops never sent."""

    done: list = field(default_factory=list)
    failures: list = field(default_factory=list)  # [(Op, AmqpError)]
    not_attempted: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


class _Lane:
    """One channel and the window of requests in flight on it (oldest first).

    pika allows one outstanding *synchronous* request per channel, so a window is sent
    as ``nowait`` requests followed by one synchronous request: the broker handles a
    channel's requests in order, so its reply means the whole window succeeded, and an
    error closes the channel naming the object that failed.
    """

    __slots__ = ("channel", "ops", "sent_at", "open", "opened")

    def __init__(self):
        self.channel = None
        self.ops: list[Op] = []
        self.sent_at = 0.0
        self.open = False
        self.opened = False  # the broker opened it (stays True once it closes)


# --------------------------------------------------------------------------- session
class Session:
    """One AMQP connection to one vhost with ``channels`` channels for pipelined work.

    ``run(ops)`` sends every op, keeping each channel busy, and returns once all
    replies have arrived or the first failure has drained. A channel error fails only
    the op that caused it (and closes that channel, which is reopened for the next op);
    once anything failed no new op is sent. A lost connection raises
    :class:`ConnectionLost` after the ops in flight are put back, so the caller can
    reconnect and call ``run`` with ``result.not_attempted`` (every op is idempotent).
    """

    def __init__(self, settings: BrokerSettings, vhost: str, *, channels: int = 32, name: str | None = None,
                 connection: pika.BlockingConnection | None = None, op_timeout: float | None = None,
                 window: int = 20):
        self.settings = settings
        self.vhost = vhost
        self.name = name or holder_name()
        self.width = max(1, channels)
        self.window = max(1, window)
        self.op_timeout = op_timeout or max(settings.timeout, 5.0)
        self.connection = connection
        self._lanes: list[_Lane] = []
        self.halt: threading.Event | None = None  # set by a Pool: stop sending (another connection failed)

    # ---- connection management
    def open(self) -> "Session":
        if self.connection is not None and self.connection.is_open:
            # an idle connection may have died quietly (missed heartbeats while other work ran)
            try:
                self.connection.process_data_events(0)
            except (pex.AMQPError, OSError):
                self.connection = None
        if self.connection is None or not self.connection.is_open:
            self.connection = connect(self.settings, self.vhost, name=self.name)
            self._lanes = []
        return self

    @property
    def is_open(self) -> bool:
        return self.connection is not None and self.connection.is_open

    def close(self) -> None:
        conn, self.connection = self.connection, None
        self._lanes = []
        if conn is not None and conn.is_open:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - closing a dead connection is not an error worth reporting
                pass

    def __enter__(self) -> "Session":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    def _impl(self):
        # pika's BlockingConnection keeps its asynchronous connection in ``_impl``; its
        # channels accept callbacks, which is what allows many requests in flight.
        return self.connection._impl  # noqa: SLF001

    def _open_lanes(self, wanted: int) -> None:
        """Open channels until ``wanted`` lanes are usable (reopening closed ones)."""
        self._lanes = [lane for lane in self._lanes if lane.open or lane.ops]
        missing = wanted - len(self._lanes)
        for _ in range(missing):
            lane = _Lane()

            def opened(channel, lane=lane):
                lane.open = lane.opened = True
                channel.add_on_close_callback(lambda ch, reason, lane=lane: self._on_close(lane, reason))

            lane.channel = self._impl().channel(on_open_callback=opened)
            self._lanes.append(lane)
        deadline = time.monotonic() + self.op_timeout
        while not all(lane.open for lane in self._lanes):
            self._pump(deadline, "opening channels")

    def _pump(self, deadline: float, doing: str) -> None:
        if time.monotonic() > deadline:
            raise _Timeout(doing)
        try:
            self.connection.process_data_events(time_limit=0.02)
        except (pex.AMQPConnectionError, OSError) as exc:
            self._connection_failed(exc)

    # ---- results of in-flight requests
    def _on_ok(self, lane: _Lane, frame) -> None:
        ops, lane.ops = lane.ops, []
        for op in ops:
            self._result.done.append(op)
            if self._on_done:
                self._on_done(op)
        self._feed(lane)

    def _on_close(self, lane: _Lane, reason) -> None:
        lane.open = False
        ops, lane.ops = lane.ops, []
        if not ops:
            return
        if isinstance(reason, pex.ChannelClosedByBroker):
            # requests before the failed one succeeded; the broker ignored the ones after it
            culprit = _blame(ops, reason.reply_text or "")
            at = ops.index(culprit)
            for op in ops[:at]:
                self._result.done.append(op)
                if self._on_done:
                    self._on_done(op)
            self._result.failures.append((culprit, AmqpError(culprit.subject, reason.reply_code, reason.reply_text)))
            self._result.not_attempted[:0] = ops[at + 1:]
            self._stopped = True
        else:  # closed with the connection: the outcome is unknown, send them again later
            self._inflight_lost.extend(ops)

    def _connection_failed(self, exc: BaseException) -> None:
        """Put the ops in flight back (or blame one of them for a hard error) and raise."""
        code = getattr(exc, "reply_code", None)
        text = getattr(exc, "reply_text", "") or ""
        limit = reached_limit(code, text)
        if limit is not None and limit.code != "channel-limit":
            limit = None  # a connection limit is met at connecting, not here
        if limit:
            # the user's max-channels (all its connections count): the broker closes the whole
            # connection when a channel beyond it opens; as many as had opened fit next time
            user = self.settings.username
            opened = sum(1 for lane in self._lanes if lane.opened)  # all are closed by now, with the connection
            if opened < 1:
                self.connection = None
                self._result.not_attempted[:0] = [op for lane in self._lanes for op in lane.ops] + self._inflight_lost
                self._lanes, self._inflight_lost = [], []
                raise BrokerError(f"the broker refused a channel to vhost '{self.vhost}': the channel limit of user "
                                  f"'{user}' ({limit.number}) is reached by its other channels",
                                  code="channel-limit", hint=limit_hint(limit, user))
            # 4.x counts a user's channels with some delay, so more than fit may have opened
            # before the refusal: never more than the limit leaves beside the apply lock's channel
            ceiling = max(1, int(limit.number) - 1) if limit.number.isdigit() else opened
            self.width = min(self.width, opened, ceiling)
            text = f"{text}; {self.width} channel(s) from now on"
        inflight = [op for lane in self._lanes for op in lane.ops] + self._inflight_lost
        for lane in self._lanes:
            lane.ops = []
            lane.open = False
        self._inflight_lost = []
        self._lanes = []
        if code and code not in (320,) and inflight and not limit:  # a hard error caused by a request (503, 541, ...)
            culprit = _blame(inflight, text)
            self._result.failures.append((culprit, AmqpError(culprit.subject, code, text)))
            self._result.not_attempted[:0] = [op for op in inflight if op is not culprit]
            self._stopped = True
            self.connection = None
            raise _HardError()
        self._result.not_attempted[:0] = inflight
        self.connection = None
        reason = format_reply(code, text) if code else (str(exc) or type(exc).__name__)
        raise ConnectionLost(f"connection to vhost '{self.vhost}' lost: {scrub(reason, self.settings)}")

    def _feed(self, lane: _Lane) -> None:
        if self._stopped or not self._queue or not lane.open:
            return
        if self.halt is not None and self.halt.is_set():  # another connection of a Pool failed
            self._stopped = True
            return
        # Spread the work: a window never takes more than an even share of what is left.
        size = min(self.window, max(1, len(self._queue) // len(self._lanes)))
        ops = [self._queue.popleft() for _ in range(min(size, len(self._queue)))]
        lane.ops = ops
        lane.sent_at = time.monotonic()
        last = len(ops) - 1
        start = 0
        if last > 0 and all(op.method in RAW_METHODS for op in ops[:last]):
            try:
                number = lane.channel.channel_number
                data = b"".join([raw_frame(number, op) for op in ops[:last]])
            except (ValueError, TypeError, struct.error, pex.AMQPError):
                data = None  # pika says what is wrong with it (below)
            if data is not None:
                self._impl()._output_marshaled_frames([data])  # noqa: SLF001 - one write for the window
                start = last
        for i, op in enumerate(ops[start:], start):
            method = getattr(lane.channel, op.method)
            try:
                if i == last:
                    method(callback=lambda frame, lane=lane: self._on_ok(lane, frame), **op.kwargs)
                else:
                    method(**op.kwargs)  # no callback: nowait where the method has it
            except (pex.AMQPError, ValueError, TypeError) as exc:  # refused by pika before sending
                # the ones already sent have no reply coming: their outcome is unknown
                lane.ops = []
                self._result.failures.append((op, AmqpError(op.subject, 0, f"not sent: {type(exc).__name__}: {exc}")))
                self._result.not_attempted[:0] = ops[:i] + ops[i + 1:]
                self._stopped = True
                return

    # ---- the one public operation
    def run(self, ops: Iterable[Op], on_done: Callable[[Op], None] | None = None,
            tick: Callable[[], None] | None = None) -> BatchResult:
        """Send ``ops`` over up to ``channels`` channels; see the class docstring.

        ``on_done(op)`` is called as each reply arrives; ``tick()`` between I/O rounds
        (progress reporting). Raises :class:`ConnectionLost` when the connection drops;
        the partial result is then in ``self.last_result``.
        """
        self._queue = deque(ops)
        self._result = BatchResult()
        self.last_result = self._result
        self._on_done = on_done
        self._stopped = False
        self._inflight_lost: list[Op] = []
        if not self._queue:
            return self._result
        try:
            self.open()
            self._open_lanes(min(self.width, len(self._queue)))
            for lane in self._lanes:
                self._feed(lane)
            while any(lane.ops for lane in self._lanes):
                oldest = min((lane.sent_at for lane in self._lanes if lane.ops), default=time.monotonic())
                self._pump(oldest + self.op_timeout, "waiting for a reply")
                if not self._stopped and self._queue:
                    for lane in self._lanes:
                        if not lane.ops and lane.open:
                            self._feed(lane)
                if self._inflight_lost:
                    self._result.not_attempted[:0] = self._inflight_lost
                    self._inflight_lost = []
                if tick:
                    tick()
        except _HardError:
            pass
        except _Timeout as exc:
            waiting = sorted((lane for lane in self._lanes if lane.ops), key=lambda lane: lane.sent_at)
            if waiting:
                culprit = waiting[0].ops[0]
                self._result.failures.append((culprit, AmqpError(
                    culprit.subject, 0, f"no reply from the broker within {self.op_timeout:.0f}s")))
                self._result.not_attempted[:0] = [op for lane in waiting for op in lane.ops if op is not culprit]
            else:
                self._result.failures.append((Op("channel_open", {}, f"vhost '{self.vhost}'"), AmqpError(
                    f"vhost '{self.vhost}'", 0, f"no reply from the broker while {exc}")))
            self.close()  # the state of a connection that stopped answering is unknown
        except ConnectionLost:
            self._result.not_attempted.extend(self._queue)
            self._queue = deque()
            raise
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: what the broker answers now still counts as done
            self._drain()
            raise
        self._result.not_attempted.extend(self._queue)
        self._queue = deque()
        return self._result

    DRAIN_SECONDS = 10.0  # after an interrupt: how long without any reply before the rest in flight is given up

    def _drain(self) -> None:
        """After an interrupt: send nothing more, and wait for the replies to the requests in flight as
        long as they keep coming (given up after :attr:`DRAIN_SECONDS` without one), so the changes the
        broker made are reported done (``on_done``); what is still unanswered then, and what was never
        sent, is in ``not_attempted``. The connection is closed."""
        self._stopped = True

        def in_flight() -> int:
            return sum(len(lane.ops) for lane in self._lanes)

        waiting, last_reply = in_flight(), time.monotonic()
        try:
            while self.connection is not None and waiting:
                self._pump(last_reply + min(self.op_timeout, self.DRAIN_SECONDS), "waiting for the replies in flight")
                now = in_flight()
                if now < waiting:
                    waiting, last_reply = now, time.monotonic()
        except (_Timeout, _HardError, BrokerError):
            pass  # no answer, or the connection went: those outcomes stay unknown (not done)
        for lane in self._lanes:
            self._result.not_attempted.extend(lane.ops)
            lane.ops = []
        self._result.not_attempted.extend(self._inflight_lost)
        self._result.not_attempted.extend(self._queue)
        self._inflight_lost, self._queue = [], deque()
        self.close()

    # ---- conveniences (one op, synchronous)
    def queue_counts(self, queue: str) -> tuple[int, int] | None:
        """(ready messages, consumers) of ``queue`` from a passive declare, or None when it does not exist.

        Exact: the queue process answers with its own counts (management statistics lag
        about 5 s). Used to guard deletes of quorum queues, which refuse ``if-empty`` and
        ``if-unused`` (540 NOT_IMPLEMENTED, a connection error, on 3.10, 4.0 and 4.3).
        A stream answers 0 messages whatever it holds: never trust this for streams.
        """
        self.open()
        subject = f"queue '{queue}'" + _in(self.vhost)
        try:
            ch = self.connection.channel()
            frame = ch.queue_declare(queue, passive=True)
        except pex.ChannelClosedByBroker as exc:
            if exc.reply_code == 404:
                return None
            raise AmqpError(subject, exc.reply_code, exc.reply_text) from None
        except (pex.AMQPConnectionError, OSError) as exc:
            self.connection, self._lanes = None, []
            raise ConnectionLost(f"connection to vhost '{self.vhost}' lost: "
                                 f"{scrub(str(exc) or type(exc).__name__, self.settings)}") from None
        try:
            ch.close()
        except (pex.AMQPError, OSError):
            pass
        return frame.method.message_count, frame.method.consumer_count

    def call(self, op: Op) -> None:
        """Run one op and raise its :class:`AmqpError` if the broker refused it."""
        result = self.run([op])
        if result.failures:
            raise result.failures[0][1]


class _Timeout(Exception):
    """Internal: no reply within the op timeout."""


class _HardError(Exception):
    """Internal: a connection error blamed on a request; the failure is already recorded."""


def _blame(inflight: list[Op], text: str) -> Op:
    """The in-flight op a connection-level error is about: the one whose name or type the text quotes."""
    for op in inflight:
        for key in ("exchange_type", "exchange", "queue", "destination", "source"):
            value = op.kwargs.get(key)
            if value and f"'{value}'" in text:
                return op
    return inflight[0]


def __getattr__(name: str):
    """``amqp.Pool`` without an import cycle (topoform/broker/amqp_pool.py imports this module)."""
    if name == "Pool":
        from .amqp_pool import Pool

        return Pool
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
