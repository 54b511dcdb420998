"""``topoform test``: run every ``tests:`` entry of the files through the router (SPEC section 3).

Each entry publishes (vhost, exchange, routing key, optional headers) offline and
compares the set of queues reached with ``expect`` (``expect: []`` means
unroutable). Prints one line per test, every failure with its expected and actual
queues and the paths that led there, and a summary. Exit 0 all pass, 3 any fail,
1 error (files invalid). A test whose publish the broker would refuse (an internal
exchange, a CC header that is not an array) fails, with the broker's reason.
"""
from __future__ import annotations

from .env import Environment, ExitCode
from ..perf import gc_paused
from .route import render_path


def register(subparsers, parents):
    parser = subparsers.add_parser(
        "test", parents=[parents["common"], parents["files"], parents["target"]],
        help="run the files' route tests (tests:) offline",
        description="Run every entry of the files' tests: list through the offline router and compare the "
                    "queues reached with expect. Exit 0 all pass, 3 any fail, 1 error.")
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    return parser


def _label(test) -> str:
    if test.name:
        return test.name
    text = f"{test.exchange or '(default)'} {test.routing_key!r}"
    if test.headers:
        text += " " + ", ".join(f"{k}={v!r}" for k, v in test.headers.items())
    return text


def _queues(queues) -> str:
    return "[" + ", ".join(queues) + "]" if queues else "[] (unroutable)"


def run(args, env: Environment) -> int:
    with gc_paused():
        return _run(args, env)


def _run(args, env: Environment) -> int:
    from ..routing import Router, RoutingError, with_super_streams
    from .common import dump_json, load_files

    loaded = load_files(args, env)
    topology = loaded.topology
    # super streams (config objects) route as their exchange, partition streams and bindings
    router = Router(with_super_streams(topology, loaded.config), version=loaded.rabbitmq_version)
    results = []
    for test in topology.tests:
        expected = tuple(sorted(set(test.expect)))
        try:
            res = router.route(test.vhost, test.exchange, test.routing_key, test.headers)
            error = None
        except RoutingError as exc:
            res, error = None, exc.message
        actual = res.queues if res is not None else None
        results.append((test, expected, res, error, error is None and actual == expected))
    failed = sum(1 for r in results if not r[4])
    passed = len(results) - failed

    if args.json:
        env.out(dump_json({
            "format_version": 1,
            "tests": [{"name": t.name, "vhost": t.vhost, "exchange": t.exchange, "routing_key": t.routing_key,
                       "headers": (res.to_dict()["headers"] if res is not None else None),
                       "position": str(t.position) if t.position else None,
                       "expected": list(expected), "actual": list(res.queues) if res is not None else None,
                       "error": error, "passed": ok,
                       "routes": [r.to_dict() for r in res.routes] if res is not None else []}
                      for t, expected, res, error, ok in results],
            "summary": {"passed": passed, "failed": failed}}))
        return ExitCode.OK if failed == 0 else ExitCode.BLOCKED

    if not results:
        env.out("no tests: the files have no tests: entries")
        return ExitCode.OK
    for test, expected, res, error, ok in results:
        where = f"  ({test.position})" if test.position else ""
        if ok:
            env.out(f"PASS  {_label(test)}")
            continue
        env.out(f"FAIL  {_label(test)}{where}")
        env.out(f"      publish:  vhost {test.vhost!r}, exchange {test.exchange!r}, routing key {test.routing_key!r}"
                + (f", headers {dict(test.headers)!r}" if test.headers else ""))
        env.out(f"      expected: {_queues(expected)}")
        if error is not None:
            env.out(f"      actual:   error: {error}")
            continue
        env.out(f"      actual:   {_queues(res.queues)}")
        for r in res.routes:
            env.out(f"        {r.queue}: {render_path(r.path)}")
    env.out(f"{passed} passed, {failed} failed")
    return ExitCode.OK if failed == 0 else ExitCode.BLOCKED
