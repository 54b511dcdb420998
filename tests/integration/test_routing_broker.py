"""Proof against the broker: the simulator predicts exactly what RabbitMQ delivers.

A seeded random topology (topic, direct, fanout and headers exchanges, exchange-to-
exchange chains with a cycle and a self-binding, chained alternate exchanges, an AE
naming a missing exchange, an internal exchange, exclusive queues; at least 500
bindings) is declared in the per-test vhost, the same topology is built as a
:class:`Topology`, at least 1,000 messages with edge-case keys and typed headers are
published, every delivery is consumed and attributed by ``message_id``, and for every
message the set of queues that received it must equal the router's prediction, with
no queue receiving a message twice.

Set ``TOPOFORM_ROUTING_SEED`` to replay a run; the seed is printed on failure.
"""
from __future__ import annotations

import os
import random
import struct
import time

import pika
import pika.data
import pytest

from topoform.model import Args, Binding, Exchange, Queue, Topology
from topoform.routing import Router, RoutingError
from topoform.versions import has

SEED = int(os.environ.get("TOPOFORM_ROUTING_SEED", "20240611"))
N_MESSAGES = 1200

TOPIC_BIND_WORDS = ["a", "b", "c", "", "*", "#", "a*b", "é"]
TOPIC_KEY_WORDS = ["a", "b", "c", "", "*", "#", "ab", "é", "A"]
DIRECT_KEYS = ["a", "b", "", "a.b", "*", "#", "A", "a ", "é"]
SPECIAL_KEYS = ["", ".", "..", "a..b", "a.", ".a", "#", "*", "a*b", "a.b.c.d.e.f",
                ".".join(["a"] * 127) + "b",            # 255 bytes, 127 words
                "b" * 255]
HEADER_NAMES = ["a", "b", "n", "x-k", "CC", "BCC"]
HEADER_VALUES = ["1", 1, 1.0, 1.5, 2, True, "true", b"1", None, [1, 2], [2, 1], "é"]
X_MATCH = [None, "all", "any", "all-with-x", "any-with-x"]


@pytest.fixture
def double_encoding(monkeypatch):
    """pika cannot encode float in tables (SEMANTICS Appendix B): send Python floats as AMQP doubles."""
    original = pika.data.encode_value

    def encode_value(pieces, value):
        if isinstance(value, float):
            pieces.append(b"d" + struct.pack(">d", value))
            return 9
        return original(pieces, value)

    monkeypatch.setattr(pika.data, "encode_value", encode_value)


def topic_key(rng: random.Random, words) -> str:
    if rng.random() < 0.1:
        return ""
    return ".".join(rng.choice(words) for _ in range(rng.randint(1, 5)))


def header_table(rng: random.Random, names, max_keys: int) -> dict:
    out = {}
    for _ in range(rng.randint(0, max_keys)):
        name = rng.choice(names)
        out[name] = rng.choice(HEADER_VALUES)
    return out


class Builder:
    """Declares on the broker and records the same objects for the simulator."""

    def __init__(self, channel, vhost: str):
        self.ch = channel
        self.vhost = vhost
        self.resources = []

    def exchange(self, name, type_, internal=False, arguments=None):
        self.ch.exchange_declare(name, type_, internal=internal, arguments=arguments or None)
        self.resources.append(Exchange(self.vhost, name, type_, internal=internal, arguments=Args(arguments or {})))

    def queue(self, name, exclusive=False):
        self.ch.queue_declare(name, exclusive=exclusive)
        self.resources.append(Queue(self.vhost, name, exclusive=exclusive))

    def bind(self, source, destination, key="", args=None, destination_type="queue"):
        if destination_type == "queue":
            self.ch.queue_bind(destination, source, key, arguments=args or None)
        else:
            self.ch.exchange_bind(destination, source, key, arguments=args or None)
        self.resources.append(Binding(self.vhost, source, destination, destination_type, key, Args(args or {})))

    def topology(self) -> Topology:
        return Topology.build(self.resources)


def _at_most_two_hashes(key: str) -> str:
    """4.3 refuses a topic binding key with more than two '#' words: the extra ones become '*'."""
    words, seen = key.split("."), 0
    for i, w in enumerate(words):
        if w == "#":
            seen += 1
            if seen > 2:
                words[i] = "*"
    return ".".join(words)


def build_random_topology(b: Builder, rng: random.Random, queues: list[str], max_two_hashes: bool = False):
    topics = ["t0", "t1", "t2"]
    b.exchange("t0", "topic", arguments={"alternate-exchange": "ae0"})
    b.exchange("t1", "topic")
    b.exchange("t2", "topic")
    b.exchange("int0", "topic", internal=True)
    b.exchange("d0", "direct", arguments={"alternate-exchange": "ae1"})
    b.exchange("d1", "direct")
    b.exchange("f0", "fanout")
    b.exchange("f1", "fanout")
    b.exchange("h0", "headers")
    b.exchange("h1", "headers", arguments={"alternate-exchange": "nope"})  # AE that does not exist
    b.exchange("ae0", "fanout")
    b.exchange("ae1", "direct", internal=True, arguments={"alternate-exchange": "ae2"})  # AE chain, internal AE
    b.exchange("ae2", "fanout")
    b.exchange("dead", "fanout")  # no bindings: a dead end
    for i, q in enumerate(queues):
        b.queue(q, exclusive=i % 8 == 0)

    # exchange-to-exchange: chains, a cycle (t1 -> d0 -> f0 -> t1), a self-binding, a dead end
    b.bind("t0", "t1", "a.#", destination_type="exchange")
    b.bind("t0", "t1", "*.b", destination_type="exchange")
    b.bind("t1", "d0", "#", destination_type="exchange")
    b.bind("d0", "f0", "a", destination_type="exchange")
    b.bind("d0", "f0", "a.b", destination_type="exchange")
    b.bind("f0", "t1", destination_type="exchange")
    b.bind("t2", "t2", "#", destination_type="exchange")
    b.bind("t2", "int0", "*.*", destination_type="exchange")
    b.bind("f1", "int0", destination_type="exchange")
    b.bind("t0", "dead", "c.c", destination_type="exchange")
    b.bind("d1", "h1", "b", destination_type="exchange")
    b.bind("h0", "f1", args={"x-match": "any", "x-k": "v", "a": "1"}, destination_type="exchange")
    b.bind("ae2", "t2", destination_type="exchange")

    for x in topics + ["int0"]:
        for _ in range(85):
            key = topic_key(rng, TOPIC_BIND_WORDS)
            b.bind(x, rng.choice(queues), _at_most_two_hashes(key) if max_two_hashes else key)
    for x in ("d0", "d1", "ae1"):
        for _ in range(40):
            b.bind(x, rng.choice(queues), rng.choice(DIRECT_KEYS))
    for x in ("f0", "f1", "ae0", "ae2"):
        for _ in range(4):
            b.bind(x, rng.choice(queues), rng.choice(["", "ignored"]))
    for x in ("h0", "h1"):
        for _ in range(45):
            args = header_table(rng, HEADER_NAMES, 3)
            xm = rng.choice(X_MATCH)
            if xm is not None:
                args["x-match"] = xm
            b.bind(x, rng.choice(queues), rng.choice(["", "k"]), args=args)


def generate_messages(rng: random.Random, queues: list[str]):
    publishable = ["t0", "t1", "t2", "d0", "d1", "f0", "f1", "h0", "h1", "ae0", "ae2", "dead", ""]
    for i in range(N_MESSAGES):
        exchange = rng.choice(publishable)
        roll = rng.random()
        if exchange == "":
            key = rng.choice(queues + ["nope", "Q00", "q00 ", ""])
        elif roll < 0.15:
            key = rng.choice(SPECIAL_KEYS)
        elif exchange.startswith("d") or exchange == "ae1":
            key = rng.choice(DIRECT_KEYS)
        else:
            key = topic_key(rng, TOPIC_KEY_WORDS)
        headers = None
        if rng.random() < 0.8:
            headers = header_table(rng, ["a", "b", "n", "x-k", "A"], 4)
            if rng.random() < 0.1:
                extra = [rng.choice(DIRECT_KEYS + queues) for _ in range(rng.randint(1, 2))]
                headers[rng.choice(["CC", "BCC"])] = extra
        yield str(i), exchange, key, headers


def settled_counts(channel, queues: list[str], limit: float = 30.0) -> int:
    """Total messages ready in ``queues`` once two polls 0.3 s apart agree (routing is asynchronous)."""
    previous, start = -1, time.monotonic()
    while time.monotonic() - start < limit:
        total = sum(channel.queue_declare(q, passive=True).method.message_count for q in queues)
        if total == previous:
            return total
        previous = total
        time.sleep(0.3)
    return previous


def drain(connection, channel, queues: list[str], expected_total: int, limit: float = 60.0) -> dict[str, list[str]]:
    """Consume every queue until ``expected_total`` deliveries arrived; message_id -> queues (with repeats)."""
    received: dict[str, list[str]] = {}
    count = [0]

    def on_message(q):
        def cb(ch, method, properties, body):
            received.setdefault(properties.message_id, []).append(q)
            count[0] += 1
        return cb

    channel.basic_qos(prefetch_count=1000)
    for q in queues:
        channel.basic_consume(q, on_message(q), auto_ack=True)
    start = time.monotonic()
    while count[0] < expected_total and time.monotonic() - start < limit:
        connection.process_data_events(time_limit=0.1)
    connection.process_data_events(time_limit=0.3)  # anything beyond the count would show up as a mismatch
    return received


def test_simulator_predicts_every_delivery_of_a_random_topology(amqp, vhost, double_encoding, broker_version):
    rng = random.Random(SEED)
    queues = [f"q{i:02d}" for i in range(40)]
    ch = amqp.channel()
    b = Builder(ch, vhost)
    build_random_topology(b, rng, queues, max_two_hashes=has(broker_version, "topic_max_two_hash"))
    topology = b.topology()
    assert len(topology.bindings) >= 500, len(topology.bindings)
    router = Router(topology, version=broker_version)

    predicted: dict[str, tuple[str, ...]] = {}
    for message_id, exchange, key, headers in generate_messages(rng, queues):
        predicted[message_id] = router.route(vhost, exchange, key, headers).queues
        ch.basic_publish(exchange, key, b"", pika.BasicProperties(message_id=message_id, headers=headers))
    assert len(predicted) >= 1000
    total = settled_counts(ch, queues)
    received = drain(amqp, ch, queues, total)
    assert sum(len(qs) for qs in received.values()) == total

    duplicates = {m: qs for m, qs in received.items() if len(qs) != len(set(qs))}
    assert duplicates == {}, f"seed {SEED}: a queue got a message twice"
    wrong = {m: (predicted[m], tuple(sorted(received.get(m, ())))) for m in predicted
             if tuple(sorted(received.get(m, ()))) != predicted[m]}
    assert not wrong, f"seed {SEED}: {len(wrong)} of {len(predicted)} mispredicted (predicted, actual): " \
                      f"{dict(list(wrong.items())[:10])}"
    # the run must exercise what it claims to
    delivered = [m for m in predicted if predicted[m]]
    assert len(delivered) > 300 and len(delivered) < len(predicted)
    assert sum(len(q) for q in predicted.values()) > 1000


def test_internal_exchange_refused_by_broker_and_simulator(amqp, vhost, broker_version):
    ch = amqp.channel()
    b = Builder(ch, vhost)
    b.exchange("int", "fanout", internal=True)
    b.queue("q")
    b.bind("int", "q")
    with pytest.raises(RoutingError, match="403"):
        Router(b.topology(), version=broker_version).route(vhost, "int", "x")
    ch.basic_publish("int", "x", b"")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        ch.queue_declare("q", passive=True)  # the 403 arrives asynchronously, after the publish
    assert info.value.reply_code == 403


def test_example_topologies_route_tests_match_the_broker(amqp, vhost, examples, broker_version):
    """Every ``tests:`` entry of the example files (all their vhosts declared in the test vhost)."""
    from topoform.load import load_topology
    from topoform.model import thaw

    loaded = load_topology(sorted(str(p) for p in examples.glob("*.yaml")))
    assert loaded.ok, [f.format() for f in loaded.errors]
    topology = loaded.topology
    ch = amqp.channel()
    for x in sorted(topology.exchanges.values(), key=lambda x: x.name):
        ch.exchange_declare(x.name, x.type, durable=x.durable, auto_delete=x.auto_delete, internal=x.internal,
                            arguments=thaw(x.arguments) or None)
    for q in sorted(topology.queues.values(), key=lambda q: q.name):
        ch.queue_declare(q.name, durable=q.durable, exclusive=q.exclusive, auto_delete=q.auto_delete,
                         arguments=thaw(q.arguments) or None)
    for bd in sorted(topology.bindings, key=lambda bd: bd.key):
        bind = ch.queue_bind if bd.destination_type == "queue" else ch.exchange_bind
        bind(bd.destination, bd.source, bd.routing_key, arguments=thaw(bd.arguments) or None)
    router = Router(topology, version=broker_version)
    assert topology.tests
    predicted = {}
    for i, t in enumerate(topology.tests):
        headers = thaw(t.headers) if t.headers else None
        predicted[str(i)] = router.route(t.vhost, t.exchange, t.routing_key, headers).queues
        assert predicted[str(i)] == tuple(sorted(t.expect)), t
        ch.basic_publish(t.exchange, t.routing_key, b"", pika.BasicProperties(message_id=str(i), headers=headers))
    queues = sorted(q.name for q in topology.queues.values())
    total = settled_counts(ch, queues)
    received = drain(amqp, ch, queues, total)
    actual = {m: tuple(sorted(received.get(m, ()))) for m in predicted}
    assert actual == predicted


def test_cc_and_bcc_headers_match_the_broker(amqp, vhost, broker_version):
    """CC/BCC add routing keys; BCC is stripped before a headers exchange sees the headers."""
    ch = amqp.channel()
    b = Builder(ch, vhost)
    b.exchange("h", "headers")
    b.exchange("d", "direct")
    for q in ("bcc-present", "cc-present", "k1", "k2"):
        b.queue(q)
    b.bind("h", "bcc-present", args={"x-match": "all", "BCC": None})
    b.bind("h", "cc-present", args={"x-match": "all", "CC": None})
    b.bind("d", "k1", "k1")
    b.bind("d", "k2", "k2")
    router = Router(b.topology(), version=broker_version)
    cases = [("h", "", {"BCC": ["x"]}), ("h", "", {"CC": ["x"]}), ("d", "k1", {"CC": ["k2"]}),
             ("d", "zz", {"BCC": ["k1", "k2"]}), ("d", "k1", {"CC": ["k1"], "BCC": ["k1"]}), ("", "zz", {"CC": ["k2"]})]
    predicted = {}
    for i, (x, key, headers) in enumerate(cases):
        predicted[str(i)] = router.route(vhost, x, key, headers).queues
        ch.basic_publish(x, key, b"", pika.BasicProperties(message_id=str(i), headers=headers))
    queues = ["bcc-present", "cc-present", "k1", "k2"]
    received = drain(amqp, ch, queues, settled_counts(ch, queues))
    assert {m: tuple(sorted(received.get(m, ()))) for m in predicted} == predicted
    assert predicted["0"] == () and predicted["1"] == ("cc-present",) and predicted["3"] == ("k1", "k2")


def test_the_binding_keys_validate_warns_about_route_as_it_says(amqp, vhost):
    """validate's suspicious-binding-key warnings (validate_rules._check_binding_key), on the broker:
    each key reaches its queue with the literal key and never with the key the warning suggests."""
    from topoform.load import load_text

    cases = [("topic", "order#", "order.x", "order#"), ("topic", "order.*created", "order.x.created", "order.*created"),
             ("topic", "order..created", "order.created", "order..created"),
             ("topic", "order.created.", "order.created", "order.created."),
             ("topic", " order.created", "order.created", " order.created"),
             ("direct", "order.*", "order.x", "order.*")]
    ch = amqp.channel()
    files = {"topic": "t", "direct": "d"}
    for xtype, name in files.items():
        ch.exchange_declare(name, xtype)
    lines = [f"vhosts:\n  {vhost}:\n    exchanges: {{t: {{type: topic}}, d: {{type: direct}}}}\n    queues:\n"]
    for i, (xtype, key, intended, literal) in enumerate(cases):
        ch.queue_declare(f"q{i}")
        ch.queue_bind(f"q{i}", files[xtype], key)
        lines.append(f"      q{i}: {{durable: true, bindings: [{{exchange: {files[xtype]}, routing_key: {key!r}}}]}}\n")
        ch.basic_publish(files[xtype], intended, b"intended")
        ch.basic_publish(files[xtype], literal, b"literal")
    warned = {f.position.line for f in load_text("".join(lines)).findings if f.code == "suspicious-binding-key"}
    assert warned == set(range(5, 5 + len(cases))), warned
    settled_counts(ch, [f"q{i}" for i in range(len(cases))])
    for i in range(len(cases)):
        bodies = []
        while (got := ch.basic_get(f"q{i}", auto_ack=True))[0] is not None:
            bodies.append(got[2])
        assert bodies == [b"literal"], (cases[i], bodies)
