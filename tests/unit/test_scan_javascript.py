"""topoform scan on JavaScript and TypeScript (amqplib), parsed with tree-sitter."""
from __future__ import annotations

import pytest
from scan_helpers import SERVICES, b, q, scan_file, views, x

from topoform.scan import scan_paths


@pytest.fixture(scope="module")
def services():
    return scan_paths([str(SERVICES)])


def test_amqplib_callback_api(services):
    sn = "<frontend.gateway.server-named>"
    assert views(services, "gateway.js") == [
        (11, "exchange", "assertExchange", x("orders", "topic", durable=True), []),
        # a template string and options that become x- arguments; amqplib's durable defaults to true
        (12, "queue", "assertQueue", q("gateway.requests", durable=True, arguments={
            "x-message-ttl": 60000, "x-dead-letter-exchange": "orders.dlx"}), []),
        (13, "binding", "bindQueue", b("orders", "gateway.requests", "order.created"), []),
        (14, "queue", "assertQueue", q(sn, durable=True, exclusive=True), []),
        # q.queue from the callback's parameter; forEach over a literal array
        (16, "binding", "bindQueue", b("orders", sn, "order.shipped"), []),
        (16, "binding", "bindQueue", b("orders", sn, "order.delivered"), []),
        (18, "consume", "consume", {"queue": sn}, []),
        (20, "publish", "publish", {"exchange": "orders", "routing_key": "order.created"}, []),
        (21, "publish", "sendToQueue", {"exchange": "", "routing_key": "orders.audit"}, []),
        (22, "publish", "publish", {"exchange": "orders"}, ["routing_key"]),
    ]
    reasons = [(i.place.line, i.message) for i in services.issues
               if i.code == "unresolved" and i.place.path.endswith("gateway.js")]
    assert reasons == [(22, "publish: routing_key is not known statically: from the environment (ROUTING_KEY)")]


def test_amqplib_promise_api_in_typescript(services):
    assert views(services, "notifier.ts") == [
        (9, "exchange", "assertExchange", x("notify", "direct", durable=True), []),
        # a spread of a typed constant, plus an option, through an `as` cast
        (10, "queue", "assertQueue", q("notify.email", durable=True, arguments={
            "x-owner": "frontend", "x-message-ttl": 60000}), []),
        (11, "binding", "bindQueue", b("notify", "notify.email", "email"), []),  # const { queue } = await ...
        (12, "exchange", "checkExchange", x("orders", durable=True), [], "passive"),
        (13, "binding", "bindExchange", b("orders", "notify", "order.shipped", "exchange"), []),
        (15, "queue", "assertQueue", q("notify.sms.ts", auto_delete=True), []),  # for (const kind of [...])
        (15, "queue", "assertQueue", q("notify.push.ts", auto_delete=True), []),
        (17, "publish", "publish", {"exchange": "notify", "routing_key": "email"}, []),
    ]
    marked = [d.unroutable_ok for d in services.declarations if d.place.path.endswith("notifier.ts")
              and d.kind == "publish"]
    assert marked == [True]


def test_more_forms(tmp_path):
    f = tmp_path / "svc.mjs"
    f.write_text(
        "import amqp from 'amqplib';\n"
        "let name = 'a';\n"
        "name = 'b';\n"
        "ch.assertExchange('ae.main', 'fanout', { alternateExchange: 'ae.unrouted', durable: false });\n"  # 4
        "ch.checkQueue('jobs');\n"                                                                          # 5
        "ch.assertQueue(name);\n"                                                                           # 6
        "ch.bindQueue('jobs', 'ae.main', process.argv[2]);\n"                                               # 7
        "ch.assertQueue(`jobs.${process.env.REGION}`);\n"                                                   # 8
        "ch.assertQueue('', { exclusive: true }).then((q) => ch.bindQueue(q.queue, 'ae.main', ''));\n"      # 9
        "ch.publish('ae.main', 'k', Buffer.from(''), { persistent: true }); // comment with assertQueue\n"   # 10
    )
    result = scan_file(f)
    assert [(d.place.line, d.kind, d.call, sorted(d.unresolved)) for d in result.declarations] == [
        (4, "exchange", "assertExchange", []),
        (5, "queue", "checkQueue", []),
        (6, "queue", "assertQueue", ["name"]),
        (7, "binding", "bindQueue", ["routing_key"]),
        (8, "queue", "assertQueue", ["name"]),
        (9, "queue", "assertQueue", []),
        (9, "binding", "bindQueue", []),
        (10, "publish", "publish", []),
    ]
    by_line = {(d.place.line, d.kind): d for d in result.declarations}
    assert by_line[(4, "exchange")].fields["arguments"] == {"alternate-exchange": "ae.unrouted"}
    assert by_line[(5, "queue")].passive
    assert by_line[(9, "binding")].fields["destination"].ref == "svc.server-named"
    assert [i.message.split(": ", 2)[-1] for i in result.issues if i.code == "unresolved"] == [
        "'name' is assigned more than once",
        "from the command line (process.argv)",
        "a template string with from the environment (REGION)",
    ]


def test_without_the_parser_javascript_is_skipped_with_a_hint(tmp_path, monkeypatch):
    from topoform.scan import javascript

    def unavailable(language):
        raise javascript.Unavailable("no module named tree_sitter")

    monkeypatch.setattr(javascript, "parser_for", unavailable)
    (tmp_path / "a.js").write_text("ch.assertQueue('x');\n")
    result = scan_paths([str(tmp_path)])
    assert result.declarations == []
    assert [i.message for i in result.skipped] == [
        "not scanned: the javascript parser is not installed (pip install 'topoform[scan-js]')"]


def test_values_of_one_loop_are_combined_turn_by_turn(tmp_path):
    f = tmp_path / "svc.js"
    f.write_text(
        "const amqp = require('amqplib');\n"
        "async function main(ch) {\n"
        "  await ch.assertExchange('events', 'topic');\n"
        "  for (const svc of ['orders', 'billing']) {\n"
        "    await ch.assertQueue(svc);\n"
        "    await ch.bindQueue(svc, 'events', `${svc}.#`);\n"
        "  }\n"
        "  ['a', 'b'].forEach(k => { ch.assertQueue(k); ch.bindQueue(k, 'events', k + '.x'); });\n"
        "}\n"
    )
    result = scan_paths([str(f)])
    got = sorted((b.source, b.destination, b.routing_key) for b in result.topology.bindings)
    assert got == [("events", "a", "a.x"), ("events", "b", "b.x"), ("events", "billing", "billing.#"),
                   ("events", "orders", "orders.#")]


def test_object_entries_destructuring_and_a_loop_over_the_outer_turns_array(tmp_path):
    f = tmp_path / "svc.js"
    f.write_text(
        "const QUEUES = {'payments.captured': ['payment.captured', 'payment.settled'],\n"
        "                'payments.refunds': ['payment.refunded']};\n"
        "async function main(ch) {\n"
        "  await ch.assertExchange('payments', 'topic'); await ch.assertExchange('audit', 'fanout');\n"
        "  for (const [name, keys] of Object.entries(QUEUES)) {\n"
        "    await ch.assertQueue(name);\n"
        "    for (const key of keys) { await ch.bindQueue(name, 'payments', key); }\n"
        "  }\n"
        "  for (const q of Object.keys(QUEUES)) { await ch.bindQueue(q, 'audit', '#'); }\n"
        "  for (const [a, b] of [['x', 1], ['y']]) { await ch.assertQueue(a); }\n"
        "}\n"
    )
    result = scan_paths([str(f)])
    got = sorted((b.source, b.destination, b.routing_key) for b in result.topology.bindings)
    assert got == [("audit", "payments.captured", "#"), ("audit", "payments.refunds", "#"),
                   ("payments", "payments.captured", "payment.captured"),
                   ("payments", "payments.captured", "payment.settled"),
                   ("payments", "payments.refunds", "payment.refunded")]
    assert sorted(n for (_, _, n) in result.topology.queues) == ["payments.captured", "payments.refunds"]
    reasons = [i.message for i in result.issues if i.code == "unresolved"]
    assert len(reasons) == 1 and "'a' unpacks items that are not all 2-element arrays" in reasons[0], reasons


def test_options_built_from_a_loop_variable_follow_the_turn(tmp_path):
    f = tmp_path / "svc.js"
    f.write_text(
        "async function main(ch) {\n"
        "  for (const svc of ['orders', 'billing']) {\n"
        "    await ch.assertQueue(`${svc}.work`, {deadLetterExchange: `${svc}.dlx`, arguments: {'x-note': svc}});\n"
        "  }\n"
        "}\n"
    )
    result = scan_paths([str(f)])
    got = {n: dict(q.arguments) for (_, _, n), q in result.topology.queues.items()}
    assert got == {"orders.work": {"x-dead-letter-exchange": "orders.dlx", "x-note": "orders"},
                   "billing.work": {"x-dead-letter-exchange": "billing.dlx", "x-note": "billing"}}


def test_a_helper_s_parameters_come_from_its_calls_in_the_file(tmp_path):
    f = tmp_path / "svc.ts"
    f.write_text(
        "async function declareWorker(ch: any, name: string, key: string = '#') {\n"
        "  await ch.assertQueue(name, { durable: true });\n"
        "  await ch.bindQueue(name, 'amq.topic', key);\n"
        "}\n"
        "const dlx = async (ch, queue) => { await ch.assertExchange(`${queue}.dlx`, 'fanout'); };\n"
        "async function main(ch) {\n"
        "  await declareWorker(ch, 'orders', 'order.*');\n"
        "  await declareWorker(ch, 'audit');\n"
        "  for (const q of ['a', 'b']) { await dlx(ch, q); }\n"
        "  await declareWorker(ch, process.env.Q);\n"
        "}\n"
        "export function exported(ch, name) { return ch.assertQueue(name); }\n"
        "exported(null, 'not-followed');\n"
        "function passed(ch, name) { return ch.assertQueue(name); }\n"
        "register(passed);\n"
    )
    result = scan_paths([str(f)])
    got = sorted((b.source, b.destination, b.routing_key) for b in result.topology.bindings)
    assert got == [("amq.topic", "audit", "#"), ("amq.topic", "orders", "order.*")]
    assert sorted(n for (_, _, n) in result.topology.queues) == ["audit", "orders"]
    assert sorted(n for (_, _, n) in result.topology.exchanges) == ["a.dlx", "b.dlx"]
    via = {d.fields["name"]: d.place.calls() for d in result.declarations if d.kind == "queue" and d.resolved}
    assert via == {"orders": ["line 7"], "audit": ["line 8"]}
    reasons = sorted(i.message.split(": ", 2)[-1] for i in result.issues if i.code == "unresolved")
    assert reasons == ["'name' is a parameter of exported(), which is exported in this file",
                       "'name' is a parameter of passed(), which is used other than by a call in this file",
                       "from the environment (Q), as 'name' of declareWorker() at the call on line 10",
                       "from the environment (Q), as 'name' of declareWorker() at the call on line 10"], reasons


@pytest.mark.parametrize("require", ["const amqp = require('amqp-connection-manager');",
                                     "import amqp from 'amqp-connection-manager';"])
def test_amqp_connection_manager_counts_as_amqplib(tmp_path, require):
    f = tmp_path / "worker.js"
    f.write_text(
        require + "\n"
        "const connection = amqp.connect(['amqp://localhost']);\n"
        "const channelWrapper = connection.createChannel({\n"
        "  setup: (channel) => Promise.all([\n"
        "    channel.assertQueue('acm.q', { durable: true }),\n"
        "    channel.assertExchange('acm.x', 'topic'),\n"
        "    channel.bindQueue('acm.q', 'acm.x', '#'),\n"
        "    channel.consume('acm.q', (m) => {}),\n"
        "  ]),\n"
        "});\n"
        "channelWrapper.addSetup((channel) => channel.consume('acm.q', (m) => {}));\n"
        "channelWrapper.publish('acm.x', 'k', { time: Date.now() });\n"
        "channelWrapper.sendToQueue('acm.q', { hello: 'world' });\n")
    got = [(d.place.line, d.kind, d.call) for d in scan_paths([str(f)]).declarations]
    assert got == [(5, "queue", "assertQueue"), (6, "exchange", "assertExchange"), (7, "binding", "bindQueue"),
                   (8, "consume", "consume"), (11, "consume", "consume"), (12, "publish", "publish"),
                   (13, "publish", "sendToQueue")]


def test_an_expression_too_deep_leaves_that_value_unresolved(tmp_path):
    terms = " + ".join(["'a'"] * 5000)
    (tmp_path / "deep.js").write_text(f"const amqp = require('amqplib');\nconst N = {terms};\n"
                                      f"async function f(ch) {{ await ch.assertQueue(N); await ch.assertQueue({terms});"
                                      " await ch.assertQueue('ok.q'); }\n")
    result = scan_paths([str(tmp_path)])
    got = [(d.place.line, d.fields.get("name"), sorted(d.unresolved)) for d in result.declarations]
    assert got == [(3, None, ["name"]), (3, None, ["name"]), (3, "ok.q", [])]
    assert {i.message for i in result.issues if i.code == "unresolved"} == {
        "assertQueue: name is not known statically: an expression nested too deep to follow"}


def test_arrays_of_objects_destructuring_map_and_loop_values_in_binding_arguments(tmp_path):
    (tmp_path / "a.js").write_text(
        "const amqp = require('amqplib');\n"
        "const QUEUES = [{name: 'a.q', ttl: 1000, key: 'a.#'}, {name: 'b.q', ttl: 2000, key: 'b.#'}];\n"
        "async function main(ch) {\n"
        "  await ch.assertExchange('ev', 'topic', {durable: true});\n"
        "  for (const q of QUEUES) {\n"
        "    await ch.assertQueue(q.name, {durable: true, messageTtl: q.ttl});\n"
        "    await ch.bindQueue(q.name, 'ev', q.key, {'x-origin': q.name});\n"
        "  }\n"
        "  for (const {name, key: k} of QUEUES) {\n"
        "    await ch.bindQueue(name, 'ev', k + '.d');\n"
        "  }\n"
        "  await Promise.all(QUEUES.map(q => ch.assertQueue(q.name + '.m', {durable: true})));\n"
        "  await Promise.all(QUEUES.map(({name}) => ch.assertQueue(name + '.n', {durable: true})));\n"
        "  for (const {missing} of QUEUES) { await ch.assertQueue(missing); }\n"
        "}\n")
    result = scan_paths([str(tmp_path)])
    assert views(result, "a.js") == [
        (4, "exchange", "assertExchange", x("ev", "topic", durable=True), []),
        (6, "queue", "assertQueue", q("a.q", durable=True, arguments={"x-message-ttl": 1000}), []),
        (6, "queue", "assertQueue", q("b.q", durable=True, arguments={"x-message-ttl": 2000}), []),
        (7, "binding", "bindQueue", b("ev", "a.q", "a.#", arguments={"x-origin": "a.q"}), []),
        (7, "binding", "bindQueue", b("ev", "b.q", "b.#", arguments={"x-origin": "b.q"}), []),
        (10, "binding", "bindQueue", b("ev", "a.q", "a.#.d"), []),
        (10, "binding", "bindQueue", b("ev", "b.q", "b.#.d"), []),
        (12, "queue", "assertQueue", q("a.q.m", durable=True), []),
        (12, "queue", "assertQueue", q("b.q.m", durable=True), []),
        (13, "queue", "assertQueue", q("a.q.n", durable=True), []),
        (13, "queue", "assertQueue", q("b.q.n", durable=True), []),
        (14, "queue", "assertQueue", {k: v for k, v in q("", durable=True).items() if k != "name"}, ["name"])]
    why = [i.message for i in result.issues if i.code == "unresolved" and i.place.line == 14]
    assert why and "'missing' is read from items that are not all objects with 'missing'" in why[0], why


def test_typescript_enums_give_their_members_values(tmp_path):
    (tmp_path / "e.ts").write_text(
        "import * as amqp from 'amqplib';\n"
        "enum Queues { Orders = 'orders.q', Audit = 'audit.q' }\n"
        "const enum Ex { Events = 'events' }\n"
        "export enum Prio { Low, High = 5, Top }\n"
        "async function main(ch: amqp.Channel) {\n"
        "  await ch.assertExchange(Ex.Events, 'topic', {durable: true});\n"
        "  await ch.assertQueue(Queues.Orders, {durable: true, maxPriority: Prio.Top});\n"
        "  await ch.assertQueue(Queues.Audit, {maxPriority: Prio.Low});\n"
        "}\n")
    assert views(scan_paths([str(tmp_path)]), "e.ts") == [
        (6, "exchange", "assertExchange", x("events", "topic", durable=True), []),
        (7, "queue", "assertQueue", q("orders.q", durable=True, arguments={"x-max-priority": 6}), []),
        (8, "queue", "assertQueue", q("audit.q", durable=True, arguments={"x-max-priority": 0}), [])]
