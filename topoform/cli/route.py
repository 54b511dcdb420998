"""``topoform test-route EXCHANGE ROUTING_KEY``: where would this message go? (SPEC section 3)

Offline: loads the files, builds the routing indexes and prints each queue reached
once, sorted, with the path of bindings that led there, or ``unroutable``. ``--json``
prints the contract's object; ``--expect Q1,Q2`` exits 3 when the queues differ.

Import-light on purpose (the CLI imports every command module to build its parser):
the loader, YAML and the router are imported inside :func:`run`.
"""
from __future__ import annotations


from ..errors import UsageError
from ..perf import gc_paused
from .env import Environment, ExitCode

MAX_SHORTSTR = 255  # exchange names and routing keys are AMQP short strings


def register(subparsers, parents):
    parser = subparsers.add_parser(
        "test-route", parents=[parents["common"], parents["files"], parents["target"]],
        help="show which queues a message would reach (offline simulation)",
        description="Simulate publishing a message and print each queue it reaches, once, sorted, with the "
                    "path of bindings that led there; 'unroutable' when none. Exit 0 ok, 1 error, "
                    "3 when --expect does not hold.")
    parser.add_argument("exchange", metavar="EXCHANGE", help='exchange to publish to ("" for the default exchange)')
    parser.add_argument("routing_key", metavar="ROUTING_KEY", help="the message's routing key (may be \"\")")
    parser.add_argument("--vhost", default=None,
                        help="virtual host (default: the only vhost of the files; with several, the only one "
                             "holding EXCHANGE, else /)")
    parser.add_argument("-H", "--header", dest="headers", action="append", default=[], metavar="KEY=VALUE",
                        help="message header (repeatable); VALUE is a YAML scalar: n=1 is the integer 1, "
                             "n='\"1\"' the string, f=1.5 a double, b=true a boolean, CC='[a.b, c]' an array")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--expect", metavar="Q1,Q2",
                        help="comma-separated queues the message must reach, exactly ('' for unroutable); exit 3 if not")
    return parser




# ---------------------------------------------------------------- parsing

def _scalar_loader():
    """A safe YAML loader whose dates stay strings (an AMQP header has no date type)."""
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class _Loader(base):  # type: ignore[misc, valid-type]
        pass

    _Loader.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in base.yaml_implicit_resolvers.items()}
    return _Loader


def parse_headers(items: list[str]) -> dict | None:
    """``-H KEY=VALUE`` items as a header table; values typed as YAML (``None`` when no -H)."""
    if not items:
        return None
    import yaml

    loader = _scalar_loader()
    headers: dict = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise UsageError(f"-H {item!r}: expected KEY=VALUE", hint="for example -H format=pdf -H n=1")
        if name in headers:
            raise UsageError(f"-H: header '{name}' given twice")
        try:
            value = yaml.load(text, Loader=loader) if text.strip() else None
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise UsageError(f"-H {name}: value {text!r} is not a valid YAML value ({problem})",
                             hint="quote strings: -H name='\"text\"'") from None
        _check_value(name, value)
        headers[name] = value
    return headers


def _check_value(name: str, value) -> None:
    if value is None or isinstance(value, (str, bool, int, float, bytes)):
        return
    if isinstance(value, list):
        for v in value:
            _check_value(name, v)
        return
    if isinstance(value, dict):
        for v in value.values():
            _check_value(name, v)
        return
    raise UsageError(f"-H {name}: a {type(value).__name__} cannot be a header value")


def parse_expect(text: str) -> tuple[str, ...]:
    return tuple(sorted({q.strip() for q in text.split(",") if q.strip()}))


def check_short(what: str, text: str) -> None:
    size = len(text.encode("utf-8"))
    if size > MAX_SHORTSTR:
        raise UsageError(f"{what} is {size} bytes; AMQP allows at most {MAX_SHORTSTR}")


# ---------------------------------------------------------------- rendering

def _name(exchange: str) -> str:
    return exchange if exchange else "(default)"


def _show(value) -> str:
    import json

    from ..model import thaw

    value = thaw(value)
    if isinstance(value, (bytes, bytearray)):
        return repr(bytes(value))
    try:
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def render_path(path) -> str:
    """``x1 -[order.created]-> x2 -[order.*]-> q``; alternate exchanges as ``-(alternate-exchange)->``."""
    parts = [_name(path[0].source)] if path else []
    for hop in path:
        if hop.via == "alternate-exchange":
            arrow = "-(alternate-exchange)->"
        else:
            label = hop.routing_key
            if hop.arguments:
                label += (" " if label else "") + "{" + ", ".join(
                    f"{k}={_show(v)}" for k, v in hop.arguments.items()) + "}"
            arrow = f"-[{label}]->"
        parts.append(arrow)
        parts.append(hop.destination)
    return " ".join(parts)


def render_text(result) -> list[str]:
    """One line per queue: ``QUEUE  PATH``; ``unroutable`` when no queue gets the message."""
    if result.unroutable:
        return ["unroutable"]
    width = max(len(r.queue) for r in result.routes)
    return [f"{r.queue.ljust(width)}  {render_path(r.path)}" for r in result.routes]


def _fmt_queues(queues) -> str:
    return "[" + ", ".join(queues) + "]" if queues else "[] (unroutable)"


# ---------------------------------------------------------------- command

def pick_vhost(topology, exchange: str) -> str:
    """The vhost when ``--vhost`` is not given, as ``graph --route`` picks it: the only vhost of
    the files; with several, the only one holding ``exchange``; else ``/`` when the files have
    it; else a usage error naming the choices."""
    names = topology.vhost_names()
    if len(names) == 1:
        return names[0]
    if not names:
        return "/"
    holding = [v for v in names if exchange and topology.exchange(v, exchange) is not None]
    if len(holding) == 1:
        return holding[0]
    choices = holding or names
    if "/" in choices:
        return "/"
    shown = ", ".join(repr(v) for v in choices[:10]) + (", ..." if len(choices) > 10 else "")
    raise UsageError(f"test-route: the files have several vhosts ({shown}); choose one with --vhost",
                     hint="see 'topoform test-route --help'")


def run(args, env: Environment) -> int:
    with gc_paused():
        return _run(args, env)


def _run(args, env: Environment) -> int:
    from ..routing import Router, with_super_streams
    from .common import dump_json, load_files

    check_short("exchange name", args.exchange)
    check_short("routing key", args.routing_key)
    headers = parse_headers(args.headers)
    expect = parse_expect(args.expect) if args.expect is not None else None
    loaded = load_files(args, env)
    router = Router(with_super_streams(loaded.topology, loaded.config), version=loaded.rabbitmq_version)
    vhost = args.vhost if args.vhost is not None else pick_vhost(loaded.topology, args.exchange)
    result = router.route(vhost, args.exchange, args.routing_key, headers)
    words = args.routing_key.split(".")
    if "*" in words or "#" in words:
        # a common slip: a binding pattern given as the message's key
        env.err(f"note: the routing key '{args.routing_key}' is the message's own key, where '*' and '#' are "
                "literal; pass a key a publisher sends (order.created), not a binding pattern")
    held = expect is None or tuple(sorted(set(result.queues))) == expect
    if args.json:
        doc = {"format_version": 1, **result.to_dict()}
        if expect is not None:
            doc["expect"] = {"queues": list(expect), "passed": held}
        env.out(dump_json(doc))
    else:
        for line in render_text(result):
            env.out(line)
    if not held:
        env.err(f"topoform: expectation failed: expected {_fmt_queues(expect)}, got {_fmt_queues(result.queues)}")
        return ExitCode.BLOCKED
    return ExitCode.OK
