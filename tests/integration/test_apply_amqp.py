"""The pipelined AMQP session against the real broker: order, attribution of errors, typed arguments."""
from __future__ import annotations

from helpers import Management

from topoform.versions import has
from topoform.broker import amqp as tfamqp
from topoform.broker.settings import quote_segment


def test_a_refusal_in_a_pipelined_batch_names_the_object_and_accounts_for_every_op(broker, vhost, amqp):
    amqp.channel().queue_declare("q050", durable=True, arguments={"x-message-ttl": 1})
    ops = [tfamqp.op_declare_queue(f"q{i:03d}", durable=True, auto_delete=False, arguments={"x-message-ttl": 2},
                                 vhost=vhost) for i in range(200)]
    with tfamqp.Session(broker, vhost, channels=4, window=10) as session:
        result = session.run(ops)
        assert len(result.failures) == 1
        op, error = result.failures[0]
        assert op.kwargs["queue"] == "q050"
        assert error.reply_code == 406 and "inequivalent arg 'x-message-ttl' for queue 'q050'" in error.reply_text
        assert len(result.done) + len(result.failures) + len(result.not_attempted) == 200
        # the failed channel is replaced: the session keeps working
        again = session.run([tfamqp.op_declare_queue("after", durable=True, auto_delete=False, arguments={})])
        assert again.ok and len(again.done) == 1


def test_a_connection_error_is_blamed_on_the_request_that_caused_it(broker, vhost, broker_version):
    ops = [tfamqp.op_declare_exchange(f"x{i}", "topic", durable=True, auto_delete=False, internal=False,
                                    arguments={}) for i in range(30)]
    ops.insert(17, tfamqp.op_declare_exchange("odd", "x-not-a-type", durable=True, auto_delete=False, internal=False,
                                            arguments={}))
    with tfamqp.Session(broker, vhost, channels=3, window=5) as session:
        result = session.run(ops)
    (op, error), = result.failures
    # 3.10 closes the connection (503 COMMAND_INVALID); 4.0+ only the channel (406), BROKERS.md
    expected = 406 if has(broker_version, "unknown_exchange_type_is_channel_error") else 503
    assert op.kwargs["exchange"] == "odd" and error.reply_code == expected
    assert "unknown exchange type 'x-not-a-type'" in str(error)


def test_bindings_with_integer_arguments_are_the_ones_http_makes(broker, vhost, mgmt: Management):
    with tfamqp.Session(broker, vhost, channels=2) as session:
        assert session.run([
            tfamqp.op_declare_exchange("h", "headers", durable=True, auto_delete=False, internal=False, arguments={}),
            tfamqp.op_declare_queue("q", durable=True, auto_delete=False, arguments={}),
        ]).ok
        assert session.run([tfamqp.op_bind("h", "q", "queue", "", {"x-match": "all", "n": 1})]).ok
    v = quote_segment(vhost)
    # POSTing the same binding over HTTP (JSON integers are AMQP long) adds no second row
    mgmt.request("POST", f"/api/bindings/{v}/e/h/q/q", {"routing_key": "", "arguments": {"x-match": "all", "n": 1}})
    rows = mgmt.get(f"/api/bindings/{v}/e/h/q/q")
    assert len(rows) == 1
    # and an unbind with long integers removes it
    with tfamqp.Session(broker, vhost, channels=1) as session:
        assert session.run([tfamqp.op_bind("h", "q", "queue", "", {"x-match": "all", "n": 1}, unbind=True)]).ok
    assert mgmt.get(f"/api/bindings/{v}/e/h/q/q") == []


def test_floats_in_arguments_reach_the_broker_as_doubles(broker, vhost, mgmt: Management, broker_version):
    with tfamqp.Session(broker, vhost) as session:
        session.call(tfamqp.op_declare_queue("f", durable=True, auto_delete=False, arguments={"x-ratio": 1.5}))
    stored = mgmt.get(f"/api/queues/{quote_segment(vhost)}/f")["arguments"]
    stored.pop("x-queue-type", None) if has(broker_version, "classic_queue_type_stored") else None
    assert stored == {"x-ratio": 1.5}
