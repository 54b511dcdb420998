"""``topoform graph``: the files' topology as a Mermaid or Graphviz DOT diagram.

``--route EXCHANGE KEY`` asks the routing engine (the one ``test-route`` uses) where a
message goes and highlights that path. ``--color-by owner`` fills each object in the colour
of its file's ``owner:`` with a legend; ``external`` objects are always drawn faded. Users,
permissions, federation upstreams and shovels are drawn when the files declare them
(``--hide users`` / ``--hide links`` leaves them out); super streams as their exchange,
partition streams and bindings.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import TopoformError, UsageError
from .common import load_files
from .env import Environment, ExitCode

HELP = "draw the topology as a Mermaid or Graphviz DOT diagram"


def register(subparsers, parents):
    parser = subparsers.add_parser(
        "graph", parents=[parents["common"], parents["files"], parents["target"]], help=HELP,
        description=HELP + ". Mermaid renders in GitHub and GitLab Markdown (```mermaid blocks); "
                           "render DOT with Graphviz, e.g. `topoform graph --format dot | dot -Tsvg > topology.svg`.")
    parser.add_argument("--format", dest="format", choices=("mermaid", "dot"), default="mermaid",
                        help="output format (default: mermaid)")
    parser.add_argument("--route", nargs=2, metavar=("EXCHANGE", "KEY"),
                        help="highlight the path a message published to EXCHANGE with routing key KEY "
                             "takes (\"\" is the default exchange)")
    parser.add_argument("-H", "--header", dest="headers", action="append", default=[], metavar="KEY=VALUE",
                        help="with --route: a message header (repeatable; VALUE typed as in test-route)")
    parser.add_argument("--vhost", dest="vhosts", action="append", metavar="V",
                        help="draw only this vhost (repeatable; default: every vhost in the files, or with "
                             "--route the vhost of the route)")
    parser.add_argument("--color-by", dest="color_by", choices=("kind", "owner"), default="kind",
                        help="fill objects by kind (default) or by the owner: label of the file declaring "
                             "them, with a legend")
    parser.add_argument("--hide", dest="hide", action="append", choices=("users", "links"), default=[],
                        help="leave out users and their permissions (users) or federation upstreams and "
                             "shovels (links); repeatable")
    parser.add_argument("-o", "--output", metavar="FILE", help="write to FILE (default: stdout)")
    return parser


def _route_vhost(args, topology, names: list[str]) -> str:
    """The vhost for ``--route``: the one given, the only one, or the only one holding the exchange."""
    if args.vhosts:
        if len(set(args.vhosts)) > 1:
            raise UsageError("--route needs exactly one vhost: give a single --vhost")
        return args.vhosts[0]
    if len(names) == 1:
        return names[0]
    exchange = args.route[0]
    holding = [v for v in names if topology.exchange(v, exchange) is not None]
    if len(holding) == 1:
        return holding[0]
    if "/" in (holding or names):
        return "/"
    raise UsageError(f"--route: {'several vhosts have' if holding else 'the files have several vhosts and no'} "
                     f"exchange {exchange!r}; choose the vhost with --vhost")


def _highlight(topology, vhost: str, exchange: str, key: str, headers, version: str):
    from ..graph import highlight_from_route
    from ..routing import Router, RoutingError

    if exchange != "" and topology.exchange(vhost, exchange) is None and not exchange.startswith("amq."):
        raise TopoformError(f"--route: no exchange {exchange!r} in vhost {vhost!r}", code="unknown-exchange")
    try:
        result = Router(topology, version=version).route(vhost, exchange, key, headers)
    except RoutingError as exc:
        raise TopoformError(f"--route: {exc}", code="routing") from None
    return highlight_from_route(vhost, exchange, key, result)


def _file_owner(path: str) -> str | None:
    """The top-level ``owner:`` of one file (composed, not constructed: any tag is fine), or None."""
    import yaml

    try:
        with open(path, encoding="utf-8") as fh:
            root = yaml.compose(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    if isinstance(root, yaml.MappingNode):
        for key, value in root.value:
            if isinstance(key, yaml.ScalarNode) and key.value == "owner" and isinstance(value, yaml.ScalarNode):
                return value.value or None
    return None


def _owners(loaded, topology) -> dict:
    """``(kind, vhost, name)`` -> owner label, for the exchanges and queues the files declare."""
    by_file: dict = {}

    def owner_of(position) -> str | None:
        if position is None:
            return None
        if position.path not in by_file:
            by_file[position.path] = _file_owner(position.path)
        return by_file[position.path]

    out = {}
    for bucket in (topology.exchanges, topology.queues):
        for key in bucket:
            pos = loaded.positions.get(key) if key in loaded.positions else None
            if pos is None and loaded.config is not None:  # a super stream's exchange or partition
                pos = _super_stream_position(loaded.config, key)
            label = owner_of(pos)
            if label:
                out[key] = label
    return out


def _super_stream_position(config, key):
    from ..routing.super_streams import partitions

    kind, vhost, name = key
    for obj in config.objects.values():
        if obj.kind != "super_stream" or obj.vhost != vhost:
            continue
        if (kind == "exchange" and obj.name == name) or \
                (kind == "queue" and name in {q for _, q in partitions(obj.name, obj.fields)}):
            return config.positions.get(obj.key)
    return None


def _extras(args, loaded, topology):
    from ..graph import Extras

    external = {}
    ownership = loaded.ownership
    if ownership is not None:
        for vhost, scope in ownership.vhosts.items():
            if scope.external_exchanges or scope.external_queues:
                external[vhost] = {"exchange": dict(scope.external_exchanges), "queue": dict(scope.external_queues)}
    config = tuple(loaded.config.objects.values()) if loaded.config is not None else ()
    owners = _owners(loaded, topology) if args.color_by == "owner" else {}
    return Extras(owners=owners, external=external, config=config,
                  users="users" not in args.hide, links="links" not in args.hide)


def run(args, env: Environment) -> int:
    from ..graph import render
    from ..routing import with_super_streams

    loaded = load_files(args, env)
    topology = with_super_streams(loaded.topology, loaded.config)
    names = topology.vhost_names()
    if args.vhosts:
        unknown = sorted(set(args.vhosts) - set(names))
        if unknown:
            raise UsageError(f"--vhost: not in the files: {', '.join(repr(v) for v in unknown)}")
    if args.headers and not args.route:
        raise UsageError("-H/--header needs --route")
    highlight = None
    draw = args.vhosts
    if args.route:
        vhost = _route_vhost(args, topology, names)
        draw = draw or [vhost]  # the route lives in one vhost: draw that one
        from .route import parse_headers

        highlight = _highlight(topology, vhost, args.route[0], args.route[1], parse_headers(args.headers),
                               loaded.rabbitmq_version)
        where = ", ".join(highlight.queues) if highlight.queues else "unroutable"
        env.err(f"route: {args.route[0] or '(default exchange)'} [{args.route[1]}] -> {where}")
    text = render(topology, args.format, vhosts=draw, highlight=highlight, extras=_extras(args, loaded, topology),
                  color_by=args.color_by)
    if not args.output or args.output == "-":
        env.stdout.write(text)
        return ExitCode.OK
    try:
        Path(env.cwd, args.output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise TopoformError(f"cannot write {args.output}: {exc.strerror or exc}", code="output") from None
    return ExitCode.OK
