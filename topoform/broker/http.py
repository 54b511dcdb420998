"""The management HTTP API client: one ``requests`` session, quoting, timeouts, TLS, errors.

Owns every HTTP request topoform makes to the broker. Every failure becomes a
:class:`~topoform.errors.BrokerError` with a one-line message that names the
*redacted* base URL (never a password) and, where one helps, a hint. Imports no
pika and nothing from planner, apply or cli.

Error mapping (observed on RabbitMQ 3.10.8):

* connection refused / DNS failure     -> ``broker-unreachable``
* connect or read timeout              -> ``broker-timeout`` (hint: ``--timeout``)
* TLS handshake or verification        -> ``broker-tls`` (hint: ``--ca-cert``)
* 401 ``Login failed``                 -> ``broker-auth``
* 401 ``Not management user``          -> ``broker-permission`` (the user lacks the management tag)
* 401 ``Not administrator user``       -> ``broker-permission`` (definitions need the administrator tag)
* any other unexpected status          -> ``broker-http`` quoting the broker's ``reason``

Several management URLs (a cluster, ``BrokerSettings.http_bases``): a request goes to the
endpoint in use; when that endpoint cannot be reached (refused, reset, no TCP connect within
the timeout; a GET also on a read timeout) the same request goes to the next one, which is
then used from now on. Only when none answers is the error raised, naming every endpoint.
"""
from __future__ import annotations

import html
import json
import time
from typing import Any, Iterable, Mapping

import requests

from ..errors import BrokerError
from .settings import BrokerSettings, quote_segment, redact, tls_failure_reason

__all__ = ["ManagementClient", "quote_segment"]

_USER_AGENT = "topoform"


class ManagementClient:
    """A small client for the RabbitMQ management API.

    ``settings`` gives the base URL, credentials, CA bundle and timeout. ``session``
    may be injected (tests); otherwise one is created and reused for every request.

    Example::

        client = ManagementClient(BrokerSettings())
        client.vhost_names()            # ['/']
        client.definitions("/")         # {'queues': [...], 'exchanges': [...], ...}
    """

    def __init__(self, settings: BrokerSettings, session: requests.Session | None = None):
        self.settings = settings
        self.session = session if session is not None else requests.Session()
        # one (base, auth) per management endpoint (a cluster's nodes); usually just one.
        # HTTP Basic as UTF-8 (the broker decodes it so); requests would send a str as Latin-1,
        # which garbles "é" (401) and cannot encode "ж" at all.
        endpoints = [settings.http_endpoint(i) for i in range(len(settings.http_bases))]
        self._bases = [e.http_base_clean for e in endpoints]
        self._auths = [tuple(c.encode("utf-8") for c in e.http_credentials) for e in endpoints]
        user, password = settings.http_credentials
        self.session.auth = (user.encode("utf-8"), password.encode("utf-8"))
        self.session.headers.update({"accept": "application/json", "user-agent": _USER_AGENT})
        # https verifies certificates by default; --ca-cert names the CA bundle to trust. It is
        # passed on every request, because requests lets REQUESTS_CA_BUNDLE override session.verify.
        self.verify: str | bool = settings.ca_cert or True
        self.session.verify = self.verify
        self.timeout = settings.timeout
        self._user = settings.http_credentials[0]
        # set once GET /api/definitions/V answered "not administrator": read listings instead
        self._definitions_forbidden = False

    # ------------------------------------------------------------------ core
    @property
    def base(self) -> str:
        """The management base URL in use now (no userinfo)."""
        return self._bases[self.settings.http_order()[0]] if len(self._bases) > 1 else self._bases[0]

    def request(self, method: str, path: str, body: Any = None,
                expect: Iterable[int] = (200, 201, 204), params: dict | None = None,
                accept: str | None = None) -> requests.Response:
        """Send one request; return the response when its status is in ``expect``.

        ``path`` starts with ``/api/`` and has its segments already quoted (use
        :func:`quote_segment`). ``body`` is sent as JSON. Raises BrokerError otherwise.
        With several endpoints, one that cannot be reached passes the request to the next.
        """
        if len(self._bases) == 1:
            response = self._send(0, method, path, body, params, accept)
        else:
            response = self._send_anywhere(method, path, body, params, accept)
        expect = tuple(expect)
        if expect and response.status_code not in expect:
            raise self._status_error(method, path, response, getattr(response, "topoform_base", None))
        return response

    def _send_anywhere(self, method: str, path: str, body: Any, params: dict | None,
                       accept: str | None) -> requests.Response:
        order = self.settings.http_order()
        last: BrokerError | None = None
        for i in order:
            try:
                response = self._send(i, method, path, body, params, accept)
            except BrokerError as exc:
                if not getattr(exc, "elsewhere", False):
                    raise
                last = exc
                continue
            if i != order[0]:
                self.settings.use_http(i)
            return response
        assert last is not None
        tried = ", ".join(self._bases[i] for i in order)
        raise BrokerError(f"none of the {len(order)} management endpoints answered ({tried}); last: {last.message}",
                          code=last.code, hint=last.hint) from None

    def _send(self, i: int, method: str, path: str, body: Any, params: dict | None,
              accept: str | None) -> requests.Response:
        """One request to endpoint ``i``. A BrokerError with ``elsewhere`` set may be retried on another endpoint."""
        base = self._bases[i]
        url = base + path
        headers = {"content-type": "application/json"} if body is not None else None
        if accept is not None:  # PUT /api/user-limits and /api/vhost-limits answer 406 to "accept: application/json"
            headers = {**(headers or {}), "accept": accept}
        try:
            try:
                response = self.session.request(method, url, params=params, headers=headers,
                                                data=None if body is None else json.dumps(body),
                                                timeout=self.timeout, verify=self.verify, auth=self._auths[i])
            except requests.exceptions.ConnectionError as exc:
                if method not in _RESENDABLE or not _dropped_by_server(exc):
                    raise
                # the broker closed a kept-alive connection as the request went out on it (its
                # idle timeout): send it once more on a new connection; these methods are idempotent
                response = self.session.request(method, url, params=params, headers=headers,
                                                data=None if body is None else json.dumps(body),
                                                timeout=self.timeout, verify=self.verify, auth=self._auths[i])
            try:
                response.topoform_base = base  # error messages name the endpoint that answered
            except AttributeError:  # a stand-in response (tests)
                pass
            return response
        except requests.exceptions.SSLError as exc:
            reason = tls_failure_reason(str(exc))
            hint = ("is this port serving TLS? use http:// for port 15672" if "does not speak TLS" in reason
                    else "pass the CA that signed the broker's certificate with --ca-cert")
            raise BrokerError(f"TLS failure talking to the management API at {base}: {reason}",
                              code="broker-tls", hint=hint) from None
        except (requests.exceptions.ConnectTimeout, requests.exceptions.ReadTimeout) as exc:
            error = BrokerError(f"the management API at {base} did not answer within {self.timeout:g}s "
                                f"({method} {path})", code="broker-timeout",
                                hint="check the address, or raise --timeout")
            # a write that timed out may have been carried out: only the executor's retry repeats it
            error.elsewhere = isinstance(exc, requests.exceptions.ConnectTimeout) or method in ("GET", "HEAD")
            raise error from None
        except requests.exceptions.ConnectionError as exc:
            error = BrokerError(f"cannot connect to the management API at {base}: {_connection_reason(exc)}",
                                code="broker-unreachable",
                                hint="is RabbitMQ running with the management plugin? "
                                     "set --management-url or TOPOFORM_MANAGEMENT_URL")
            error.elsewhere = True
            raise error from None
        except requests.exceptions.RequestException as exc:
            raise BrokerError(redact(f"request to the management API at {base} failed: "
                                     f"{type(exc).__name__}"), code="broker-http") from None
        except OSError as exc:  # e.g. an unreadable --ca-cert file (requests raises a bare OSError)
            if self.settings.ca_cert and "certificate" in str(exc).lower():
                raise BrokerError(f"cannot read the CA certificate file {self.settings.ca_cert!r}",
                                  code="broker-tls", hint="--ca-cert names a PEM file") from None
            raise BrokerError(f"cannot talk to the management API at {base}: {type(exc).__name__}",
                              code="broker-unreachable") from None

    # A GET answered 500 or 503 is asked again after these pauses: the API answers 500 when one
    # of its workers crashes on a passing state (seen once on 4.3.6 during a migration, for the
    # statistics of a quorum queue declared a moment after the classic queue of the same name
    # was deleted: badarg in rabbit_mgmt_db:adjust_hibernated_memory_use; not reproduced on
    # its own), and 503 while a node is still starting.
    GET_RETRY_PAUSES = (0.25, 0.5, 1.0, 2.0)

    def get(self, path: str, params: dict | None = None) -> Any:
        """GET ``path`` and return its JSON body (a 500 or 503 is retried, see ``GET_RETRY_PAUSES``)."""
        for pause in (*self.GET_RETRY_PAUSES, None):
            response = self.request("GET", path, params=params, expect=(200, 500, 503))
            if response.status_code == 200:
                break
            if pause is None:
                raise self._status_error("GET", path, response, getattr(response, "topoform_base", None))
            time.sleep(pause)
        try:
            data = response.json()
        except ValueError:
            raise BrokerError(f"{self.base}{path} did not answer with JSON: is this a RabbitMQ management API?",
                              code="broker-http") from None
        wrong = _unlike_rabbitmq(path, data, (params or {}).get("columns"))
        if wrong:  # another JSON server at the management URL: one line, not a TypeError further on
            raise BrokerError(f"{self.base} does not look like the RabbitMQ management API: GET {path} answered "
                              f"{wrong}", code="not-rabbitmq",
                              hint="check --management-url (the management plugin listens on port 15672, "
                                   "15671 with TLS)")
        return data

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> "ManagementClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ endpoints
    def overview(self) -> dict:
        """``GET /api/overview``, only ``rabbitmq_version``, ``management_version`` and ``cluster_name``.

        Without the columns and ``disable_stats`` the broker counts every object and message
        rate first: 12-48 ms on 4.3.6 against 4-8 ms (1,000 queues; 147 vhosts for the
        slower figures), and the version is the first thing a plan waits for."""
        return self.get("/api/overview", params={"columns": "rabbitmq_version,management_version,cluster_name",
                                                 "disable_stats": "true"})

    def vhosts(self) -> list[dict]:
        """Every vhost with its settings (``name``, ``description``, ``tags``, ``default_queue_type``)."""
        return self.get("/api/vhosts", params={"columns": "name,description,tags,default_queue_type"})

    def vhost_names(self) -> list[str]:
        """The names of every vhost on the broker, sorted."""
        return sorted(v["name"] for v in self.get("/api/vhosts", params={"columns": "name"}))

    def definitions(self, vhost: str) -> dict:
        """``GET /api/definitions/VHOST``: one vhost's exchanges, queues, bindings and policies.

        The smallest complete configuration source (RABBITMQ-SEMANTICS.md 10.4). It omits
        exclusive queues and the bindings to them (section 4.1). In 3.10 it needs the
        ``administrator`` tag; for any other user (pipelines usually run with a
        ``management`` or ``policymaker`` account) the same document is rebuilt from the
        per-kind listings, which such users may read (:meth:`definitions_from_listings`), and so
        it is for a non-ASCII vhost whose export fails (500, or a body cut off).
        """
        if not self._definitions_forbidden:
            path = f"/api/definitions/{quote_segment(vhost)}"
            try:
                if vhost.isascii():
                    return self.get(path)
                # 4.0.5 and 4.3.6 fail the export of non-ASCII vhosts, every time (measured: 500 with
                # an empty body for "заказы" on both and "café" on 4.0.5; for "café" 4.3.6 answers 200
                # with a body cut off inside the JSON; 3.10.8 answers both): no retries, the listings
                # answer for them
                response = self.request("GET", path, expect=(200, 500))
                if response.status_code == 200:
                    try:
                        return response.json()
                    except ValueError:
                        pass
            except BrokerError as exc:
                if exc.code != "broker-permission":
                    raise
                self._definitions_forbidden = True
        return self.definitions_from_listings(vhost)

    def definitions_from_listings(self, vhost: str) -> dict:
        """One vhost's definitions, shaped as ``GET /api/definitions/V``, from four listings
        (:data:`LISTINGS`, one request after the other; the live reader issues them at once)."""
        rows = {kind: self.get(path, params=params) for kind, (path, params) in listing_requests(vhost).items()}
        return combine_listings(rows)

    def queue_stats(self, vhost: str) -> list[dict]:
        """Every queue of a vhost with only the columns the planner needs.

        ``messages`` and ``consumers`` come from stats and lag by about 5 s; they are
        absent for a queue whose stats have not been emitted yet (section 10.3).
        """
        return self.get(f"/api/queues/{quote_segment(vhost)}",
                        params={"columns": "name,exclusive,messages,consumers", **UNSORTED})

    # ------------------------------------------------------------------ errors
    def _status_error(self, method: str, path: str, response: requests.Response,
                      base: str | None = None) -> BrokerError:
        status = response.status_code
        reason = _reason(response)
        base = base or self.base
        where = f"{base}{path}"
        if status == 401:
            low = reason.lower()
            if "not management user" in low:
                return BrokerError(f"user '{self._user}' may not use the management API at {base} "
                                   "(it lacks the 'management' tag)", code="broker-permission",
                                   hint="give the user the management, policymaker or administrator tag")
            if "not administrator" in low:
                return BrokerError(f"user '{self._user}' is not an administrator on {base}; "
                                   f"{method} {path} needs the 'administrator' tag", code="broker-permission",
                                   hint="use an administrator, or plan offline with --state FILE")
            if "not authorised to access virtual host" in low:
                return BrokerError(f"user '{self._user}' has no permission on the vhost of {method} {path} "
                                   f"(401 {reason})", code="broker-permission",
                                   hint="grant the user permissions on that vhost (rabbitmqctl set_permissions)")
            if "not authorised to access object" in low:  # e.g. a policy without the policymaker tag
                needs = "the 'policymaker' or 'administrator' tag" if "/api/policies/" in path \
                    else "a tag or permission it lacks"
                return BrokerError(f"user '{self._user}' may not {method} {path}: it needs {needs} (401 {reason})",
                                   code="broker-permission")
            return BrokerError(f"the management API at {base} refused the credentials of user "
                               f"'{self._user}' (401 {reason or 'Unauthorized'})", code="broker-auth",
                               hint="check the user and password (--username, --password-file, TOPOFORM_PASSWORD, "
                                    "or the userinfo of --url / --management-url)")
        if status == 403:
            return BrokerError(f"user '{self._user}' is not allowed to {method} {where} (403 {reason})",
                               code="broker-permission")
        if status == 404:
            return BrokerError(f"{method} {where}: not found (404)", code="broker-not-found",
                               hint="is --management-url the RabbitMQ management API?")
        return BrokerError(f"{method} {where} answered {status}" + (f": {reason}" if reason else ""),
                           code="broker-http")


# Listings whose answer is a list of objects with a "name": kind -> path segments after it that
# still name the listing (``/api/queues/V`` is one vhost's queues, ``/api/queues/V/Q`` one queue).
_NAMED_LISTINGS = {"vhosts": 0, "users": 0, "nodes": 0, "global-parameters": 0, "queues": 1, "exchanges": 1,
                   "policies": 1, "operator-policies": 1}


def _describe_json(data: Any) -> str:
    if isinstance(data, dict):
        return "an empty object" if not data else "an object"
    if isinstance(data, list):
        return "an empty list" if not data else "a list"
    return "null" if data is None else "a string" if isinstance(data, str) else "a number" \
        if isinstance(data, (int, float)) and not isinstance(data, bool) else "a boolean"


def _unlike_rabbitmq(path: str, data: Any, columns: str | None = None) -> str:
    """What in a GET answer no RabbitMQ management API would send (its shape, never its content), or "".
    ``columns``: the ``columns`` asked for (the answer holds only those)."""
    def asked(field: str) -> bool:
        return not columns or field in columns.split(",")

    if path == "/api/overview":
        if not isinstance(data, dict) or (asked("rabbitmq_version") and not (
                isinstance(data.get("rabbitmq_version"), str) and data["rabbitmq_version"])):
            return f"{_describe_json(data)}, not the broker's overview (no 'rabbitmq_version')"
        return ""
    if not isinstance(data, (dict, list)):  # every GET of the management API answers an object or a list
        return _describe_json(data)
    if isinstance(data, list) and not all(isinstance(row, dict) for row in data):
        return "a list of values that are not objects"
    parts = path.split("?")[0].strip("/").split("/")[1:]  # after "api"
    if parts and parts[0] in _NAMED_LISTINGS and len(parts) - 1 <= _NAMED_LISTINGS[parts[0]]:
        if not isinstance(data, list):
            return f"{_describe_json(data)} where a list of {parts[0]} belongs"
        if asked("name") and not all(isinstance(row.get("name"), str) for row in data):
            return f"a list of {parts[0]} without their names"
    return ""


def _reason(response: requests.Response) -> str:
    """The broker's ``reason`` (or ``error``) from a JSON error body, else a short text excerpt.

    The management API HTML-escapes its reasons (``[{&lt;&lt;"federation-upstream-set"&gt;&gt;, ...``):
    shown unescaped.
    """
    try:
        body = response.json()
    except ValueError:
        text = " ".join(html.unescape(response.text).split())
        return redact(text[:200])
    if isinstance(body, dict):
        reason = body.get("reason") or body.get("error") or ""
        return redact(" ".join(html.unescape(str(reason)).split())[:300])
    return ""


# Methods the management API treats as idempotent: a request of these that the server dropped
# without an answer may be sent again (POST may publish a message or get one: never resent).
_RESENDABLE = frozenset({"GET", "HEAD", "PUT", "DELETE"})


def _dropped_by_server(exc: Exception) -> bool:
    """True when ``exc`` is a connection the server closed or reset under a request (no answer)."""
    text = str(exc)
    return "RemoteDisconnected" in text or "Connection reset by peer" in text or "BrokenPipe" in text \
        or "Broken pipe" in text


def _connection_reason(exc: Exception) -> str:
    text = str(exc).lower()
    if "refused" in text:
        return "connection refused"
    if "name or service not known" in text or "nodename nor servname" in text or "failed to resolve" in text \
            or "temporary failure in name resolution" in text:
        return "unknown host"
    if "reset" in text:
        return "connection reset"
    if "timed out" in text:
        return "connection timed out"
    return "connection failed"


# The per-kind listings that together hold what GET /api/definitions/V holds: only the
# columns the reader needs, and no stats (issue 17: at 10,000 queues on 3.10.8 they cost
# 4.1 s together, issued one after the other, where the vhost's export costs 9.7 s).
# ``sort=`` (empty): the broker skips sorting the rows (rabbit_mgmt_util:sort_list/4 has a
# clause for an empty sort list), which the reader never needs: the rows are keyed, not
# ordered. Measured on 3.10.8 (benchmarks/bench_listings.py): the queue listing 0.061 ->
# 0.041 s at 1,000 queues and 6.92 -> 4.02 s at 30,000.
UNSORTED = {"sort": ""}
LISTINGS: dict[str, tuple[str, dict[str, str]]] = {
    "exchanges": ("/api/exchanges/{v}", {"columns": "name,type,durable,auto_delete,internal,arguments",
                                          "disable_stats": "true", **UNSORTED}),
    "queues": ("/api/queues/{v}", {"columns": "name,durable,auto_delete,exclusive,arguments",
                                    "disable_stats": "true", **UNSORTED}),
    "bindings": ("/api/bindings/{v}", {"columns": "source,destination,destination_type,routing_key,arguments",
                                        **UNSORTED}),
    "policies": ("/api/policies/{v}", {}),
}


def listing_requests(vhost: str) -> dict[str, tuple[str, dict[str, str]]]:
    """Per kind, the (path, params) of its listing in ``vhost``."""
    v = quote_segment(vhost)
    return {kind: (path.format(v=v), dict(params)) for kind, (path, params) in LISTINGS.items()}


def combine_listings(rows: Mapping[str, Any]) -> dict:
    """The listings of :data:`LISTINGS` shaped as one vhost's definitions export.

    Drops what an export leaves out, so both sources read identically: the default and
    ``amq.*`` exchanges, exclusive queues and the bindings to them, and the implicit
    default-exchange bindings (SEMANTICS sections 2, 4.1 and 6). The names of the
    exclusive queues are kept under ``"_exclusive"`` (for the reader's skipped counts).
    """
    queues = rows.get("queues") or []
    exclusive = {q["name"] for q in queues if q.get("exclusive")}
    return {
        "exchanges": [x for x in rows.get("exchanges") or [] if x["name"] and not x["name"].startswith("amq.")],
        "queues": [{k: q[k] for k in ("name", "durable", "auto_delete", "arguments") if k in q}
                   for q in queues if q["name"] not in exclusive],
        "bindings": [b for b in rows.get("bindings") or [] if b["source"] and not (
            b.get("destination_type") == "queue" and b["destination"] in exclusive)],
        "policies": rows.get("policies") or [],
        "_exclusive": sorted(exclusive),
    }

