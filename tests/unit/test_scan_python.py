"""topoform scan on Python: pika 1.x and 0.x, aio-pika, kombu; every argument form, exactly."""
from __future__ import annotations

import pytest
from scan_helpers import SERVICES, TUTORIALS, b, q, scan_file, views, x

from topoform.scan import scan_paths


@pytest.fixture(scope="module")
def services():
    return scan_paths([str(SERVICES)])


def unresolved(result, name):
    return [(i.place.line, i.field, i.message.split(": ", 2)[-1]) for i in result.issues
            if i.code == "unresolved" and i.place.path.endswith(name)]


def test_pika_1x_positional_keyword_constants_concat_fstrings_local_dicts(services):
    assert views(services, "publisher.py") == [
        # names imported from names.py (a constant, a concatenation of constants)
        (14, "exchange", "exchange_declare", x("orders", "topic", durable=True), []),
        (15, "exchange", "exchange_declare", x("orders.dlx", "fanout", durable=True), []),  # ExchangeType.fanout
        (16, "exchange", "exchange_declare", x("orders.internal", "direct", durable=True, internal=True), []),
        (17, "binding", "exchange_bind", b("orders", "orders.internal", "order.*", "exchange"), []),
        # an f-string of a constant; arguments built in a local dict, one key added afterwards
        (21, "queue", "queue_declare", q("orders.paid", durable=True, arguments={
            "x-dead-letter-exchange": "orders.dlx", "x-message-ttl": 60000, "x-max-length": 10000}), []),
        (22, "binding", "queue_bind", b("orders", "orders.paid", "order.paid"), []),
        # every argument positional: queue, passive, durable, exclusive, auto_delete, arguments
        (24, "queue", "queue_declare", q("orders.audit", durable=True, arguments={"x-message-ttl": 60000}), []),
        (25, "binding", "queue_bind", b("orders", "orders.audit", "order.#"), []),
        # a local name assigned once; 5 * 1000 from the constants module
        (28, "queue", "queue_declare", q("orders.retry", durable=True, arguments={
            "x-message-ttl": 5000, "x-dead-letter-exchange": "orders"}), []),
        # no routing key: pika sends the queue's name
        (30, "binding", "queue_bind", b("orders.dlx", "orders.retry", "orders.retry"), []),
        # names from configuration and the environment: unresolved, never guessed
        (33, "queue", "queue_declare", {"durable": True, "exclusive": False, "auto_delete": False, "arguments": {}},
         ["name"]),
        (35, "queue", "queue_declare", {"durable": True, "exclusive": False, "auto_delete": False, "arguments": {}},
         ["name"]),
        (36, "queue", "queue_declare", q("payments.in"), [], "passive"),
        (40, "publish", "basic_publish", {"exchange": "orders", "routing_key": "order.created"}, []),
        (41, "publish", "basic_publish", {"exchange": "orders", "routing_key": "order.paid"}, []),
        (42, "publish", "basic_publish", {"exchange": "orders"}, ["routing_key"]),
        (44, "publish", "basic_publish", {"exchange": "orders", "routing_key": "refund.requested"}, []),
        (45, "publish", "basic_publish", {"exchange": "", "routing_key": "payments.in"}, []),
        # a loop over a literal tuple: one binding per value
        (53, "binding", "queue_bind", b("orders", "orders.audit", "order.shipped"), []),
        (53, "binding", "queue_bind", b("orders", "orders.audit", "order.delivered"), []),
        (54, "consume", "basic_consume", {"queue": "orders.audit"}, []),
    ]
    assert unresolved(services, "publisher.py") == [
        (33, "name", "from the environment (REGION)"),
        (35, "name", "from the environment (SHARD_QUEUE)"),
        (42, "routing_key", "'order' is a parameter of publish()"),
    ]


def test_unroutable_marker_on_the_line_before(services):
    marked = {d.place.line: d.unroutable_ok for d in services.declarations
              if d.kind == "publish" and d.place.path.endswith("publisher.py")}
    assert marked == {40: False, 41: False, 42: False, 44: True, 45: False}


def test_pika_0x_spellings(services):
    assert views(services, "consumer.py") == [
        (13, "exchange", "exchange_declare", x("orders", "topic", durable=True), []),  # type=, not exchange_type=
        (14, "queue", "queue_declare", q("legacy.invoices", durable=True), []),
        (15, "binding", "queue_bind", b("orders", "legacy.invoices", "order.paid"), []),
        (16, "consume", "basic_consume", {"queue": "legacy.invoices"}, []),  # basic_consume(callback, queue=, no_ack=)
        (17, "consume", "basic_consume", {"queue": "legacy.invoices"}, []),  # basic_consume(callback, queue)
    ]


def test_pika_0x_asynchronous_channel_takes_the_callback_first(services):
    assert views(services, "async_consumer.py") == [
        (15, "exchange", "exchange_declare", {"type": "fanout", "durable": False, "auto_delete": False,
                                              "internal": False, "arguments": {}}, ["name"]),
        (18, "queue", "queue_declare", q("legacy.events.log", auto_delete=True), []),  # class constant self.QUEUE
        (21, "binding", "queue_bind", b("legacy.events", "legacy.events.log", "legacy.events.log"), []),
        (24, "consume", "basic_consume", {"queue": "legacy.events.log"}, []),
    ]
    assert unresolved(services, "async_consumer.py") == [
        (15, "name", "'exchange_name' is a parameter of setup_exchange()")]


def test_aio_pika(services):
    sn = "<billing.worker.server-named>"
    assert views(services, "worker.py") == [
        (15, "exchange", "declare_exchange", x("billing", "topic", durable=True), []),  # ExchangeType.TOPIC
        (16, "exchange", "get_exchange", x("orders"), [], "passive"),
        (17, "binding", "Exchange.bind", b("orders", "billing", "order.paid", "exchange"), []),
        (19, "queue", "declare_queue", q("billing.invoices", durable=True, arguments={
            "x-queue-type": "quorum", "x-delivery-limit": 5}), []),
        (22, "binding", "Queue.bind", b("billing", "billing.invoices", "order.paid"), []),
        # no routing key: aio-pika binds with the queue's name
        (23, "binding", "Queue.bind", b("billing", "billing.invoices", "billing.invoices"), []),
        (25, "queue", "declare_queue", q("orders.audit", durable=True, arguments={"x-message-ttl": 30000}), []),
        (26, "binding", "Queue.bind", b("orders", "orders.audit", "order.#"), []),  # exchange given by name
        (28, "queue", "declare_queue", q(sn, exclusive=True), []),  # no name: the broker names it
        (29, "binding", "Queue.bind", b("billing", sn, "invoice.*"), []),
        (31, "publish", "Exchange.publish", {"exchange": "billing", "routing_key": "invoice.created"}, []),
        (32, "publish", "Exchange.publish", {"exchange": "", "routing_key": "billing.invoices"}, []),
        (33, "consume", "Queue.consume", {"queue": "billing.invoices"}, []),
    ]


def test_kombu_defaults_units_and_bindings(services):
    assert views(services, "tasks.py") == [
        (4, "exchange", "Exchange", x("notify", "direct", durable=True), []),  # kombu: durable=True by default
        (5, "exchange", "Exchange", x("events", "topic"), []),
        # message_ttl is in seconds in kombu: 60 s = 60000 ms
        (7, "queue", "Queue", q("notify.email", durable=True, arguments={"x-owner": "notifications",
                                                                         "x-message-ttl": 60000}), []),
        (7, "binding", "Queue", b("notify", "notify.email", "email"), []),
        (9, "queue", "Queue", q("notify.sms", durable=True, arguments={"x-message-ttl": 30000, "x-max-length": 500}),
         []),
        (9, "binding", "Queue", b("notify", "notify.sms", "sms"), []),
        (10, "queue", "Queue", q("notify.digest", durable=True), []),
        (10, "binding", "binding", b("events", "notify.digest", "user.#"), []),
        (11, "binding", "binding", b("notify", "notify.digest", "digest"), []),
        (12, "queue", "Queue", q("notify.temp", durable=True, exclusive=True, auto_delete=True), []),  # exclusive
        (17, "publish", "Producer.publish", {"exchange": "notify", "routing_key": "email"}, []),
        (18, "publish", "Producer.publish", {"exchange": "notify", "routing_key": "push"}, []),
    ]


def test_tutorials_server_named_queues_and_command_line_keys():
    result = scan_paths([str(TUTORIALS)])
    assert views(result, "receive_logs.py") == [
        (8, "exchange", "exchange_declare", x("logs", "fanout"), []),
        (10, "queue", "queue_declare", q("<receive_logs.server-named>", exclusive=True), []),
        # queue_bind without a routing key: pika uses the (server-given) queue name
        (13, "binding", "queue_bind", b("logs", "<receive_logs.server-named>", "<receive_logs.server-named>"), []),
        (22, "consume", "basic_consume", {"queue": "<receive_logs.server-named>"}, []),
    ]
    assert unresolved(result, "receive_logs_direct.py") == [
        (21, "routing_key", "from the command line (sys.argv), through the loop variable 'severity'")]
    assert unresolved(result, "receive_logs_topic.py") == [
        (21, "routing_key", "from the command line (sys.argv), through the loop variable 'binding_key'")]
    assert unresolved(result, "emit_log_direct.py") == [
        (14, "routing_key", "chosen at run time: from the command line (sys.argv) or 'info'")]
    assert unresolved(result, "rpc_server.py") == [
        (28, "routing_key", "'props.reply_to' is read from a value the scan cannot follow ('props' is a parameter "
                            "of on_request())")]
    queues = {k[2]: v for k, v in result.topology.queues.items()}
    assert sorted(queues) == ["hello", "receive_logs.server-named", "receive_logs_direct.server-named",
                              "receive_logs_topic.server-named", "rpc_client.server-named", "rpc_queue", "task_queue"]
    assert [n for n, v in sorted(queues.items()) if v.exclusive] == [
        "receive_logs.server-named", "receive_logs_direct.server-named", "receive_logs_topic.server-named",
        "rpc_client.server-named"]
    assert not result.conflicts


@pytest.mark.parametrize("source, expected", [
    ("import pika\nch.queue_declare(queue='a', durable=True)\nch.queue_declare(queue='a', durable=True)\n", 0),
    ("ch.queue_declare('a')\nch.queue_declare('a', durable=True)\n", 1),
])
def test_same_declaration_twice_in_one_file(tmp_path, source, expected):
    f = tmp_path / "svc.py"
    f.write_text(source)
    assert len(scan_file(f).conflicts) == expected


def test_values_that_are_never_guessed(tmp_path):
    f = tmp_path / "svc.py"
    f.write_text(
        "import os, sys\n"
        "name = 'a'\n"
        "name = 'b'\n"
        "ch.queue_declare(name)\n"                                   # 4: assigned twice
        "ch.queue_declare(os.getenv('Q', 'default'))\n"               # 5: the default is not the value
        "ch.queue_declare(sys.argv[1])\n"                             # 6
        "ch.queue_declare('q', arguments={'x-max-length': limit()})\n"  # 7: one argument computed
        "ch.queue_declare('r', arguments=make_args())\n"              # 8: the whole mapping computed
        "ch.queue_declare('%s.x' % 'k')\n"                            # 9: computed by the scan
    )
    result = scan_file(f)
    got = [(i.place.line, i.field, i.message.split(": ", 2)[-1]) for i in result.issues if i.code == "unresolved"]
    assert got == [
        (4, "name", "'name' is assigned more than once (lines 2, 3)"),
        (5, "name", "from the environment (Q)"),
        (6, "name", "from the command line (sys.argv)"),
        (7, "arguments.x-max-length", "computed by limit()"),
        (8, "arguments", "computed by make_args()"),
    ]
    assert result.topology.queue("/", "k.x") is not None
    # the queue with one unknown argument is still written, with the argument it could read
    assert result.topology.queue("/", "q").arguments == {}
    assert result.topology.queue("/", "r") is not None


def test_a_file_that_does_not_parse_is_reported_not_fatal(tmp_path):
    (tmp_path / "bad.py").write_text("def broken(:\n")
    (tmp_path / "good.py").write_text("ch.queue_declare('ok')\n")
    result = scan_paths([str(tmp_path)])
    assert [d.fields["name"] for d in result.declarations] == ["ok"]
    assert [(i.code, i.place.line) for i in result.skipped] == [("parse-error", 1)]


def _bindings(result) -> list[tuple]:
    return sorted((b.source, b.destination, b.routing_key) for b in result.topology.bindings)


def test_a_loop_over_an_outer_loops_list_keeps_each_item_with_its_own_turn(tmp_path):
    f = tmp_path / "svc.py"
    f.write_text(
        "QUEUES = {'payments.captured': ['payment.captured', 'payment.settled'],\n"
        "          'payments.refunds': ['payment.refunded']}\n"
        "LAYOUT = [('eu', {'a': 1}), ('us', {'b': 2, 'c': 3})]\n"
        "ch.exchange_declare('payments', 'topic')\n"
        "for name, keys in QUEUES.items():\n"
        "    ch.queue_declare(name)\n"
        "    for key in keys:\n"                                   # the outer turn's list only
        "        ch.queue_bind(name, 'payments', key)\n"
        "for region, table in LAYOUT:\n"
        "    for q in table:\n"                                    # the outer turn's dict: its keys
        "        ch.queue_declare(f'{region}.{q}')\n"
        "for n, k in QUEUES.items():\n"
        "    for part in n:\n"                                     # a string is no list of names
        "        ch.queue_declare(part)\n"
    )
    result = scan_file(f)
    assert _bindings(result) == [("payments", "payments.captured", "payment.captured"),
                                 ("payments", "payments.captured", "payment.settled"),
                                 ("payments", "payments.refunds", "payment.refunded")]
    names = sorted(n for (_, _, n) in result.topology.queues)
    assert names == ["eu.a", "payments.captured", "payments.refunds", "us.b", "us.c"]
    unresolved = [(i.place.line, i.message.split(": ", 2)[-1]) for i in result.issues if i.code == "unresolved"]
    assert unresolved == [(14, "'part' loops over a value that is not a known list")]


def test_values_of_one_loop_are_combined_turn_by_turn_never_crosswise(tmp_path):
    f = tmp_path / "svc.py"
    f.write_text(
        "ROUTES = {'orders': 'order.*', 'payments': 'payment.#'}\n"
        "PAIRS = [('audit', '#'), ('mail', 'user.*')]\n"
        "ch.exchange_declare('events', 'topic')\n"
        "for svc in ['a', 'b']:\n"
        "    ch.queue_declare(svc)\n"
        "    ch.queue_bind(svc, 'events', f'{svc}.#')\n"             # a <- a.#, b <- b.#: not a <- b.#
        "    ch.queue_declare(f'{svc}.{svc}')\n"                    # a.a and b.b
        "for name, key in ROUTES.items():\n"                        # a module constant's items
        "    ch.queue_declare(name)\n"
        "    ch.queue_bind(queue=name, exchange='events', routing_key=key)\n"
        "for name2, key2 in PAIRS:\n"                               # a list of pairs, unpacked
        "    ch.queue_declare(name2)\n"
        "    ch.queue_bind(name2, 'events', key2)\n"
        "for env in ('eu', 'us'):\n"                                # two loops: every combination
        "    for q in ROUTES:\n"                                    # a dict's keys
        "        ch.queue_declare(f'{env}.{q}')\n"
        "for x, y in [('p', 1), ('q', 2, 3)]:\n"                    # uneven items: not guessed
        "    ch.queue_declare(x)\n"
    )
    result = scan_file(f)
    assert _bindings(result) == [("events", "a", "a.#"), ("events", "audit", "#"), ("events", "b", "b.#"),
                                 ("events", "mail", "user.*"), ("events", "orders", "order.*"),
                                 ("events", "payments", "payment.#")]
    names = sorted(n for (_, _, n) in result.topology.queues)
    assert names == ["a", "a.a", "audit", "b", "b.b", "eu.orders", "eu.payments", "mail", "orders", "payments",
                     "us.orders", "us.payments"]
    unresolved = [(i.place.line, i.message.split(": ", 2)[-1]) for i in result.issues if i.code == "unresolved"]
    assert unresolved == [(18, "'x' unpacks items that are not all 2-tuples")]


def test_arguments_built_from_a_loop_variable_follow_the_turn(tmp_path):
    f = tmp_path / "svc.py"
    f.write_text(
        "for svc in ['orders', 'billing']:\n"
        "    ch.queue_declare(f'{svc}.work', arguments={'x-dead-letter-exchange': f'{svc}.dlx'})\n"
        "    args = {'x-queue-type': 'quorum'}\n"
        "    args['x-dead-letter-routing-key'] = svc\n"
        "    ch.queue_declare(f'{svc}.retry', durable=True, arguments=args)\n"
    )
    result = scan_file(f)
    got = {n: dict(q.arguments) for (_, _, n), q in result.topology.queues.items()}
    assert got == {"orders.work": {"x-dead-letter-exchange": "orders.dlx"},
                   "billing.work": {"x-dead-letter-exchange": "billing.dlx"},
                   "orders.retry": {"x-queue-type": "quorum", "x-dead-letter-routing-key": "orders"},
                   "billing.retry": {"x-queue-type": "quorum", "x-dead-letter-routing-key": "billing"}}
    assert not [i for i in result.issues if i.code == "unresolved"]


def render_scan(result) -> str:
    from topoform.scan.emit import render

    return render(result.built, "/", [])


def test_a_helper_s_parameters_come_from_its_calls_in_the_file(tmp_path):
    f = tmp_path / "svc.py"
    f.write_text(
        "import os\n"
        "def declare_bound(ch, name, key, durable=True):\n"
        "    ch.queue_declare(name, durable=durable)\n"
        "    ch.queue_bind(name, 'events', key)\n"
        "def main(ch):\n"
        "    ch.exchange_declare('events', 'topic')\n"
        "    declare_bound(ch, 'orders', 'order.*')\n"
        "    declare_bound(ch, 'payments', key='payment.#', durable=False)\n"
        "    for region in ('eu', 'us'):\n"
        "        declare_bound(ch, f'reports.{region}', f'report.{region}.#')\n"
        "class Worker:\n"
        "    def _queue(self, name, ttl):\n"
        "        self.ch.queue_declare(name, arguments={'x-message-ttl': ttl})\n"
        "    def setup(self):\n"
        "        self._queue('w1', 1000)\n"
        "        self._queue('w2', 2000)\n"
        "    def public(self, name):\n"                       # 17: called from outside too: not guessed
        "        self.ch.queue_declare(name)\n"
        "def callback(ch, name):\n"                           # 19: also passed as a callback: not guessed
        "    ch.queue_declare(name)\n"
        "register(callback)\n"
        "def from_env(ch, name):\n"
        "    ch.queue_declare(name)\n"                        # 23
        "from_env(None, 'a')\n"
        "from_env(None, os.environ['Q'])\n"
    )
    result = scan_file(f)
    assert _bindings(result) == [("events", "orders", "order.*"), ("events", "payments", "payment.#"),
                                 ("events", "reports.eu", "report.eu.#"), ("events", "reports.us", "report.us.#")]
    queues = {n: q for (_, _, n), q in result.topology.queues.items()}
    assert sorted(queues) == ["a", "orders", "payments", "reports.eu", "reports.us", "w1", "w2"]  # a: line 24
    assert queues["orders"].durable and not queues["payments"].durable
    assert queues["w2"].arguments == {"x-message-ttl": 2000}
    via = {d.fields["name"]: d.place.calls() for d in result.declarations if d.kind == "queue" and d.resolved}
    assert via.pop("a") == ["line 24"]
    assert via == {"orders": ["line 7"], "payments": ["line 8"], "reports.eu": ["line 10"],
                   "reports.us": ["line 10"], "w1": ["line 15"], "w2": ["line 16"]}
    assert "svc.py:3 (called at line 7)\n      orders:" in render_scan(result)
    unresolved = {i.place.line: i.message.split(": ", 2)[-1] for i in result.issues if i.code == "unresolved"}
    assert unresolved[18] == "'name' is a parameter of public()"
    assert unresolved[20] == "'name' is a parameter of callback()"
    assert unresolved[23] == "from the environment (Q), as 'name' of from_env() at the call on line 25"


def test_a_helper_s_calls_in_the_files_that_import_it_are_followed(tmp_path):
    (tmp_path / "mq.py").write_text("def declare(ch, name, key='#'):\n    ch.queue_declare(name)\n"
                                    "    ch.queue_bind(name, 'amq.topic', key)\n"
                                    "def setup(ch):\n    declare(ch, 'local.q')\n")
    (tmp_path / "app.py").write_text("from mq import declare\n\ndef run(ch):\n    declare(ch, 'app.q', 'a.*')\n")
    (tmp_path / "alias.py").write_text("from mq import (\n    declare as dq,\n)\nfor r in ['x', 'y']:\n"
                                       "    dq(None, f'alias.{r}', key=f'{r}.#')\n")
    (tmp_path / "whole.py").write_text("import mq\nmq.declare(None, 'whole.q')\n")
    (tmp_path / "callback.py").write_text("from mq import declare\nregister(declare)\n")
    result = scan_paths([str(tmp_path)])
    assert _bindings(result) == [("amq.topic", "alias.x", "x.#"), ("amq.topic", "alias.y", "y.#"),
                                 ("amq.topic", "app.q", "a.*"), ("amq.topic", "local.q", "#"),
                                 ("amq.topic", "whole.q", "#")]
    calls = {d.fields["name"]: d.place.calls() for d in result.declarations if d.kind == "queue"}
    assert calls["app.q"] == [str(tmp_path / "app.py") + ":4"] and calls["local.q"] == ["line 5"]
    notes = [i for i in result.issues if i.code == "calls-elsewhere"]
    assert len(notes) == 1 and notes[0].place.line == 1 and "callback.py uses it" in notes[0].message, notes


def test_a_helper_of_a_package_module_imported_whole_is_followed(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "mq.py").write_text("def declare(ch, name):\n    ch.queue_declare(name, durable=True)\n")
    (tmp_path / "app.py").write_text("import pkg.mq\n\ndef run(ch):\n    pkg.mq.declare(ch, 'pkg.q')\n")
    (tmp_path / "alias.py").write_text("import pkg.mq as m\nm.declare(None, 'alias.q')\n")
    (tmp_path / "pkg" / "names.py").write_text("QUEUE = 'const.q'\n")
    (tmp_path / "consts.py").write_text("import pkg.names\nch.queue_declare(pkg.names.QUEUE)\n")
    result = scan_paths([str(tmp_path)])
    queues = sorted(n for (_, _, n) in result.topology.queues)
    assert queues == ["alias.q", "const.q", "pkg.q"], [i.message for i in result.issues]
    calls = {d.fields["name"]: d.place.calls() for d in result.declarations if d.kind == "queue"}
    assert calls["pkg.q"] == [str(tmp_path / "app.py") + ":4"]
    assert not [i for i in result.issues if i.code in ("calls-elsewhere", "unresolved")]


def test_a_loop_over_unusable_values_warns_once(tmp_path):
    f = tmp_path / "svc.py"
    f.write_text("PAIRS = [('a', 1), ('b', 2)]\nfor p in PAIRS:\n    ch.queue_declare(p)\n")
    result = scan_file(f)
    assert len(result.declarations) == 2
    assert [(i.place.line, i.field) for i in result.issues if i.code == "unresolved"] == [(3, "name")]


def test_declarations_on_the_two_sides_of_an_if_are_a_warning_not_a_conflict(tmp_path):
    f = tmp_path / "svc.py"
    f.write_text(
        "import os\n"
        "if os.environ.get('ENV') == 'prod':\n"
        "    ch.queue_declare('jobs', durable=True, arguments={'x-queue-type': 'quorum'})\n"
        "elif os.environ.get('ENV') == 'dev':\n"
        "    ch.queue_declare('jobs', durable=True, arguments={'x-message-ttl': 5})\n"
        "else:\n"
        "    ch.queue_declare('jobs', durable=True)\n"
        "match os.environ.get('MODE'):\n"
        "    case 'a':\n"
        "        ch.exchange_declare('ev', 'topic')\n"
        "    case _:\n"
        "        ch.exchange_declare('ev', 'fanout')\n"
        "if True:\n"
        "    ch.queue_declare('same-side', durable=True)\n"
        "    ch.queue_declare('same-side')\n"
        "ch.queue_declare('outside', durable=True)\n"
        "if True:\n"
        "    ch.queue_declare('outside')\n"
    )
    result = scan_file(f)
    conflicts = sorted((c.place.line, c.other.line) for c in result.conflicts)
    assert conflicts == [(14, 15), (16, 18)]  # same side of one if, or one side and outside: both run
    warned = sorted({(i.place.line, i.other.line) for i in result.issues if i.code == "conditional-declaration"})
    assert warned == [(3, 5), (3, 7), (10, 12)], [i.message for i in result.issues]
    first = next(i for i in result.issues if i.code == "conditional-declaration")
    assert "on the two sides of the if at " in first.message and first.severity == "warning"
    assert result.topology.queues[("queue", "/", "jobs")].arguments == {"x-queue-type": "quorum"}


def test_settings_of_a_plain_class_or_dataclass_instance_and_exchange_type_value(tmp_path):
    f = tmp_path / "svc.py"
    f.write_text(
        "from dataclasses import dataclass, field\n"
        "from pika.exchange_type import ExchangeType\n"
        "from pydantic_settings import BaseSettings\n"
        "@dataclass(frozen=True)\n"
        "class Cfg:\n"
        "    queue: str = 'orders.work'\n"
        "    ttl: int = 60000\n"
        "    keys: list = field(default_factory=list)\n"
        "class Plain:\n"
        "    QUEUE = 'plain.q'\n"
        "    moved = 'old'\n"
        "class WithInit:\n"
        "    q = 'x'\n"
        "    def __init__(self): self.q = 'y'\n"
        "class Env(BaseSettings):\n"
        "    queue: str = 'env.q'\n"
        "cfg, plain, init, env, given = Cfg(), Plain(), WithInit(), Env(), Cfg(queue='given.q')\n"
        "plain.moved = 'new'\n"
        "ch.exchange_declare('ev', ExchangeType.topic.value)\n"
        "ch.queue_declare(cfg.queue, arguments={'x-message-ttl': cfg.ttl})\n"
        "ch.queue_declare(plain.QUEUE)\n"
        "ch.queue_declare(plain.moved)\n"    # set elsewhere in the file: not guessed
        "ch.queue_declare(init.q)\n"         # __init__: run time
        "ch.queue_declare(env.queue)\n"      # a base class (settings from the environment): run time
        "ch.queue_declare(given.queue)\n"    # constructed with arguments: run time
    )
    result = scan_file(f)
    queues = {n: q for (_, _, n), q in result.topology.queues.items()}
    assert sorted(queues) == ["orders.work", "plain.q"]
    assert queues["orders.work"].arguments == {"x-message-ttl": 60000}
    assert result.topology.exchanges[("exchange", "/", "ev")].type == "topic"
    unresolved = sorted(i.place.line for i in result.issues if i.code == "unresolved")
    assert unresolved == [22, 23, 24, 25], [i.message for i in result.issues]


def test_imports_of_a_package_scanned_from_inside_it_src_layout(tmp_path):
    # the scan's common folder is src/myapp itself: absolute imports name the package above it
    pkg = tmp_path / "src" / "myapp"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "settings.py").write_text("QUEUE = 'myapp.jobs'\nEXCHANGE = 'myapp.events'\n")
    (pkg / "mq.py").write_text("def declare(ch, name):\n    ch.queue_declare(name, durable=True)\n")
    (pkg / "consumer.py").write_text(
        "from myapp.settings import QUEUE\n"
        "from myapp import settings\n"
        "from . import settings as s2\n"
        "from myapp import mq\n"
        "import myapp.settings as s3\n"
        "ch.queue_declare(QUEUE)\n"
        "ch.queue_declare(settings.QUEUE + '.retry')\n"
        "ch.exchange_declare(s2.EXCHANGE, 'topic')\n"
        "ch.queue_declare(s3.QUEUE + '.dlq')\n"
        "mq.declare(ch, 'myapp.helper')\n")
    for scanned in (pkg, tmp_path / "src", tmp_path):
        result = scan_paths([str(scanned)])
        queues = sorted(n for (_, _, n) in result.topology.queues)
        assert queues == ["myapp.helper", "myapp.jobs", "myapp.jobs.dlq", "myapp.jobs.retry"], (
            scanned, [i.message for i in result.issues])
        assert [n for (_, _, n) in result.topology.exchanges] == ["myapp.events"]
        assert not [i for i in result.issues if i.code in ("unresolved", "calls-elsewhere")], scanned


def test_a_package_name_that_is_not_a_scanned_module_stays_unresolved(tmp_path):
    (tmp_path / "app.py").write_text("from config import settings\nch.queue_declare(settings.QUEUE)\n")
    result = scan_paths([str(tmp_path)])
    (issue,) = [i for i in result.issues if i.code == "unresolved"]
    assert "imported from config" in issue.message


def test_a_bom_or_a_coding_cookie_is_read_as_python_reads_it(tmp_path):
    (tmp_path / "bom.py").write_bytes(b"\xef\xbb\xbfimport pika\nch = None\nch.queue_declare('bom.q')\n")
    (tmp_path / "latin1.py").write_bytes(b"# -*- coding: latin-1 -*-\nimport pika\n"
                                         b"ch.queue_declare('caf\xe9.q')  # caf\xe9\n")
    (tmp_path / "undeclared.py").write_bytes(b"import pika\n\nch.queue_declare('q')  # caf\xe9\n")
    # a helper in a file with a BOM, called from a latin-1 file: its calls are followed too
    (tmp_path / "mq.py").write_bytes(b"\xef\xbb\xbfdef declare(ch, name):\n    ch.queue_declare(name)\n")
    (tmp_path / "app.py").write_bytes(b"# coding: latin-1\nfrom mq import declare\ndeclare(ch, 'r\xe9sum\xe9')\n")
    result = scan_paths([str(tmp_path)])
    got = sorted((d.place.path.rsplit("/", 1)[-1], d.place.line, d.place.col, d.fields["name"])
                 for d in result.declarations)
    assert got == [("bom.py", 3, 1, "bom.q"), ("latin1.py", 3, 1, "café.q"), ("mq.py", 2, 5, "résumé")]
    skipped = [(i.place.path.rsplit("/", 1)[-1], i.place.line, i.message) for i in result.skipped]
    assert skipped == [("undeclared.py", 3, "not scanned: SyntaxError: byte 0xe9 on line 3 is not utf-8 and no "
                                            "coding is declared (# -*- coding: ... -*-)")]


def test_an_expression_too_deep_skips_that_file_or_that_value_only(tmp_path):
    terms = lambda n: " + ".join(["'a'"] * n)  # noqa: E731
    (tmp_path / "deep.py").write_text(f"import pika\nNAME = {terms(5000)}\nch.queue_declare(NAME)\n")
    (tmp_path / "value.py").write_text(f"import pika\nNAME = {terms(1500)}\nch.queue_declare(NAME)\n"
                                       "ch.queue_declare('value.ok')\n")
    (tmp_path / "ok.py").write_text("ch.queue_declare('ok.q')\n")
    result = scan_paths([str(tmp_path)])
    got = sorted((d.place.path.rsplit("/", 1)[-1], d.place.line, d.fields.get("name"), sorted(d.unresolved))
                 for d in result.declarations)
    assert got == [("ok.py", 1, "ok.q", []), ("value.py", 3, None, ["name"]), ("value.py", 4, "value.ok", [])]
    assert [(i.place.path.rsplit("/", 1)[-1], i.message) for i in result.skipped] == [
        ("deep.py", "not scanned: an expression too deep for Python's parser (RecursionError)")]
    assert [i.message for i in result.issues if i.code == "unresolved"] == [
        "queue_declare: name is not known statically: an expression nested too deep to follow"]


def _names(result):
    return [(d.place.line, d.fields.get("name"), d.fields.get("arguments")) for d in result.declarations]


def test_format_percent_format_specs_string_methods_and_constant_arithmetic(tmp_path):
    (tmp_path / "fmt.py").write_text(
        "SVC = ['billing', 'orders']\n"
        "PREFIX = 'shop'\n"
        "ch.queue_declare('{}.jobs'.format(PREFIX), durable=True)\n"
        "ch.queue_declare('%s.mail' % PREFIX, durable=True)\n"
        "ch.queue_declare('%s.%s' % (PREFIX, 'audit'), durable=True)\n"
        "ch.queue_declare(f'{PREFIX}.n{7:03d}', durable=True, arguments={'x-message-ttl': 60 * 60 * 1000 // 2})\n"
        "ch.queue_declare('-'.join(['a', 'b']).upper(), durable=True)\n"
        "for svc in SVC:\n"
        "    ch.queue_declare('%s.%s.x' % (PREFIX, svc), durable=True)\n"
        "    ch.queue_declare('{p}.{s}'.format(p=PREFIX, s=svc), durable=True)\n")
    assert _names(scan_paths([str(tmp_path)])) == [
        (3, "shop.jobs", {}), (4, "shop.mail", {}), (5, "shop.audit", {}),
        (6, "shop.n007", {"x-message-ttl": 1800000}), (7, "A-B", {}),
        (9, "shop.billing.x", {}), (9, "shop.orders.x", {}), (10, "shop.billing", {}), (10, "shop.orders", {})]


def test_formatting_the_scan_cannot_compute_stays_unresolved_saying_why(tmp_path):
    (tmp_path / "fmt.py").write_text(
        "import os\n"
        "ch.queue_declare('{0.real}'.format(5))\n"
        "ch.queue_declare('%(a)s' % {'a': 1})\n"
        "ch.queue_declare('{}.q'.format(os.environ['REGION']))\n"
        "ch.queue_declare(f'{1:{os.getenv(\"W\")}}')\n"
        "ch.queue_declare(f'{\"x\":d}')\n")
    result = scan_paths([str(tmp_path)])
    assert unresolved(result, "fmt.py") == [
        (2, "name", "''{0.real}'.format(5)' reads attributes or items at run time"),
        (3, "name", "a string formatted with % from a value that is not a constant"),
        (4, "name", "from the environment (REGION)"),
        (5, "name", "an f-string with from the environment (W)"),
        (6, "name", "an f-string whose format specification 'd' does not fit its value")]


def test_a_walrus_binds_its_name_like_an_assignment(tmp_path):
    (tmp_path / "w.py").write_text(
        "if (name := 'jobs.walrus'):\n"
        "    ch.queue_declare(name, durable=True)\n"
        "def f(ch):\n"
        "    if (q := 'in.fn') is not None:\n"
        "        ch.queue_declare(q, durable=True)\n"
        "f(ch)\n")
    assert [(line, name) for line, name, _ in _names(scan_paths([str(tmp_path)]))] == [
        (2, "jobs.walrus"), (5, "in.fn")]


def test_class_constants_of_a_base_class_and_read_on_the_class_itself(tmp_path):
    (tmp_path / "cls.py").write_text(
        "class Base:\n"
        "    EXCHANGE = 'events'\n"
        "    QUEUE = 'base.q'\n"
        "class Worker(Base):\n"
        "    QUEUE = 'worker.q'\n"
        "    def run(self, ch):\n"
        "        ch.exchange_declare(self.EXCHANGE, exchange_type='topic', durable=True)\n"  # 7: inherited
        "        ch.queue_declare(self.QUEUE, durable=True)\n"                              # 8: overridden
        "        ch.queue_declare(Base.QUEUE, durable=True)\n"                              # 9
        "        ch.queue_declare(Worker.EXCHANGE + '.audit', durable=True)\n"              # 10
        "class Moving:\n"
        "    NAME = 'first'\n"
        "    def rename(self):\n"
        "        self.NAME = 'second'\n"
        "ch.queue_declare(Moving.NAME, durable=True)\n"                                     # 15
        "ch.queue_declare(Worker.MISSING, durable=True)\n")                                 # 16
    result = scan_paths([str(tmp_path)])
    assert [(line, name) for line, name, _ in _names(result)] == [
        (7, "events"), (8, "worker.q"), (9, "base.q"), (10, "events.audit"), (15, None), (16, None)]
    assert unresolved(result, "cls.py") == [
        (15, "name", "'Moving.NAME' is also set on its instances"),
        (16, "name", "'Worker.MISSING' is known only at run time")]


def test_kombu_simple_queue_and_simple_buffer_declare_an_exchange_a_queue_and_their_binding(tmp_path):
    (tmp_path / "simple.py").write_text(
        "from kombu import Connection\n"
        "with Connection('amqp://') as conn:\n"
        "    q = conn.SimpleQueue('jobs', queue_args={'x-queue-type': 'quorum'})\n"
        "    q.put({'hello': 'world'})\n"
        "    buf = conn.SimpleBuffer('ephemeral', exchange_opts={'type': 'fanout'})\n")
    result = scan_paths([str(tmp_path)])
    assert views(result, "simple.py") == [
        (3, "exchange", "SimpleQueue", x("jobs", "direct", durable=True), []),
        (3, "queue", "SimpleQueue", q("jobs", durable=True, arguments={"x-queue-type": "quorum"}), []),
        (3, "binding", "SimpleQueue", b("jobs", "jobs", "jobs"), []),
        (4, "publish", "put", {"exchange": "jobs", "routing_key": "jobs"}, []),
        (5, "exchange", "SimpleBuffer", x("ephemeral", "fanout", auto_delete=True), []),
        (5, "queue", "SimpleBuffer", q("ephemeral", auto_delete=True), []),
        (5, "binding", "SimpleBuffer", b("ephemeral", "ephemeral", "ephemeral"), [])]
    (tmp_path / "simple.py").write_text("other.SimpleQueue('not.kombu')\n")  # no kombu import: not kombu's
    assert scan_paths([str(tmp_path)]).declarations == []


def test_list_comprehensions_and_generators_over_a_known_list(tmp_path):
    (tmp_path / "comp.py").write_text(
        "SVC = ['billing', 'orders']\n"
        "QUEUES = [f'{s}.jobs' for s in SVC]\n"
        "for name in QUEUES:\n"
        "    ch.queue_declare(name, durable=True)\n"
        "ch.queue_declare(','.join(s.upper() for s in SVC), durable=True)\n"
        "for name in [s + '.dlq' for s in SVC]:\n"
        "    ch.queue_declare(name, durable=True)\n"
        "ch.queue_declare([s for s in SVC if s][0], durable=True)\n"
        "for svc in SVC:\n"
        "    ch.queue_declare([f'{svc}.{k}' for k in ('a', 'b')][0], durable=True)\n")
    result = scan_paths([str(tmp_path)])
    assert [(line, name) for line, name, _ in _names(result)] == [
        (4, "billing.jobs"), (4, "orders.jobs"), (5, "BILLING,ORDERS"), (7, "billing.dlq"), (7, "orders.dlq"),
        (8, None), (10, None)]
    assert unresolved(result, "comp.py") == [
        (8, "name", "a comprehension with a condition or unpacking"),
        (10, "name", "a comprehension whose items depend on another loop")]
