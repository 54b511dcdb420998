"""The nowait method frames topoform encodes itself are byte for byte pika's (issue 17)."""
from __future__ import annotations

import pytest
from pika import frame, spec

from topoform.broker import amqp

_PIKA = {
    "exchange_declare": lambda k: spec.Exchange.Declare(exchange=k["exchange"], type=k["exchange_type"],
                                                        durable=k["durable"], auto_delete=k["auto_delete"],
                                                        internal=k["internal"], arguments=k["arguments"], nowait=True),
    "queue_declare": lambda k: spec.Queue.Declare(queue=k["queue"], durable=k["durable"], exclusive=k["exclusive"],
                                                  auto_delete=k["auto_delete"], arguments=k["arguments"], nowait=True),
    "queue_bind": lambda k: spec.Queue.Bind(queue=k["queue"], exchange=k["exchange"], routing_key=k["routing_key"],
                                            arguments=k["arguments"], nowait=True),
    "exchange_bind": lambda k: spec.Exchange.Bind(destination=k["destination"], source=k["source"],
                                                  routing_key=k["routing_key"], arguments=k["arguments"], nowait=True),
    "exchange_unbind": lambda k: spec.Exchange.Unbind(destination=k["destination"], source=k["source"],
                                                      routing_key=k["routing_key"], arguments=k["arguments"],
                                                      nowait=True),
    "queue_delete": lambda k: spec.Queue.Delete(queue=k["queue"], if_unused=k["if_unused"], if_empty=k["if_empty"],
                                                nowait=True),
    "exchange_delete": lambda k: spec.Exchange.Delete(exchange=k["exchange"], if_unused=k["if_unused"], nowait=True),
}

CASES = [
    amqp.op_declare_exchange("x.é", "topic", durable=True, auto_delete=False, internal=True,
                             arguments={"alternate-exchange": "ae", "n": 5, "f": 1.5, "l": [1, "a"], "t": {"k": True}}),
    amqp.op_declare_exchange("x", "direct", durable=False, auto_delete=True, internal=False, arguments=None),
    amqp.op_declare_queue("q", durable=True, auto_delete=False, arguments={"x-message-ttl": 60000, "x-n": None}),
    amqp.op_declare_queue("q2", durable=False, auto_delete=True, arguments={}),
    amqp.op_bind("x", "q", "queue", "rk.#", {"x-match": "all", "n": 3}),
    amqp.op_bind("x", "q", "queue", "", {"n": 3}, int_type=int),
    amqp.op_bind("x", "y", "exchange", "", None),
    amqp.op_bind("x", "y", "exchange", "k", {"a": "b"}, unbind=True),
    amqp.op_delete_queue("q", if_empty=True, if_unused=False),
    amqp.op_delete_queue("q", if_empty=False, if_unused=True),
    amqp.op_delete_exchange("x", if_unused=True),
    amqp.op_delete_exchange("x"),
]


@pytest.mark.parametrize("op", CASES, ids=lambda op: op.method)
def test_raw_frame_is_pikas_frame(op):
    assert amqp.raw_frame(7, op) == frame.Method(7, _PIKA[op.method](op.kwargs)).marshal()


def test_queue_unbind_is_left_to_pika():
    # queue.unbind has no nowait bit: the broker always answers it, so pika must send it
    assert "queue_unbind" not in amqp.RAW_METHODS


def test_a_name_longer_than_255_bytes_is_refused():
    with pytest.raises(ValueError):
        amqp.raw_frame(1, amqp.op_declare_queue("é" * 200, durable=True, auto_delete=False, arguments=None))


def _pika_publish(channel, exchange, key, props, body, body_max, mandatory):
    """What pika's Connection._send_message writes for Channel.basic_publish (its own code path)."""
    frames = [frame.Method(channel, spec.Basic.Publish(exchange=exchange, routing_key=key, mandatory=mandatory)).marshal(),
              frame.Header(channel, len(body), props).marshal()]
    for start in range(0, len(body), body_max):
        frames.append(frame.Body(channel, body[start:start + body_max]).marshal())
    return b"".join(frames)


FULL = spec.BasicProperties(content_type="application/json", content_encoding="gzip",
                            headers={"x-topoform-mid": "r.1.2", "n": 7, "l": [1, "é"], "t": {"k": None}},
                            delivery_mode=2, priority=3, correlation_id="c", reply_to="r", expiration="6000",
                            message_id="m", timestamp=1700000000, type="t", user_id="guest", app_id="a",
                            cluster_id="")


@pytest.mark.parametrize("props", [spec.BasicProperties(), spec.BasicProperties(delivery_mode=2), FULL],
                         ids=["none", "persistent", "every-field"])
@pytest.mark.parametrize("size", [0, 5, 100, 101, 250])
@pytest.mark.parametrize("mandatory", [True, False])
def test_raw_publish_is_pikas_publish(props, size, mandatory):
    body = bytes(range(256))[:size]
    got = amqp.raw_publish(3, "ex.é", "rk", props, body, 100, mandatory=mandatory)
    assert got == _pika_publish(3, "ex.é", "rk", props, body, 100, mandatory)
