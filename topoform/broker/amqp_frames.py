"""AMQP 0-9-1 method frames of the ``nowait`` methods apply pipelines, and the frames of a
``basic.publish`` (the migration mover's), encoded here rather than by pika.

pika's per-method path cost more client CPU than the broker's work on two cores (issue 17).
A method frame is: type 1, channel, size, class id, method id, the fields, frame end 0xCE.
Only methods with a ``nowait`` bit are encoded: their bytes go straight to pika's output
buffer, in order with what pika itself sends (``tests/unit/test_amqp_raw.py`` checks them
byte for byte against pika's own encoding).
"""
from __future__ import annotations

import struct
from typing import Any, Callable, Mapping

import pika.data

_EMPTY_TABLE = b"\x00\x00\x00\x00"
_RESERVED = b"\x00\x00"


def _short(value: str) -> bytes:
    raw = value.encode("utf-8")
    if len(raw) > 255:
        raise ValueError(f"{value[:40]!r}...: longer than 255 bytes")
    return bytes((len(raw),)) + raw


def _table(args: Mapping | None) -> bytes:
    if not args:
        return _EMPTY_TABLE
    pieces: list = []
    pika.data.encode_table(pieces, args)
    return b"".join(pieces)


def _raw_exchange_declare(kw: dict) -> bytes:
    bits = 16 | (2 if kw.get("durable") else 0) | (4 if kw.get("auto_delete") else 0) | (8 if kw.get("internal") else 0)
    return (b"\x00\x28\x00\x0a" + _RESERVED + _short(kw["exchange"]) + _short(kw.get("exchange_type") or "direct")
            + bytes((bits,)) + _table(kw.get("arguments")))


def _raw_queue_declare(kw: dict) -> bytes:
    bits = 16 | (2 if kw.get("durable") else 0) | (4 if kw.get("exclusive") else 0) | (8 if kw.get("auto_delete") else 0)
    return b"\x00\x32\x00\x0a" + _RESERVED + _short(kw["queue"]) + bytes((bits,)) + _table(kw.get("arguments"))


def _raw_queue_bind(kw: dict) -> bytes:
    return (b"\x00\x32\x00\x14" + _RESERVED + _short(kw["queue"]) + _short(kw["exchange"])
            + _short(kw.get("routing_key") or "") + b"\x01" + _table(kw.get("arguments")))


def _raw_exchange_bind(kw: dict, method: bytes = b"\x00\x28\x00\x1e") -> bytes:
    return (method + _RESERVED + _short(kw["destination"]) + _short(kw["source"])
            + _short(kw.get("routing_key") or "") + b"\x01" + _table(kw.get("arguments")))


def _raw_exchange_unbind(kw: dict) -> bytes:
    return _raw_exchange_bind(kw, b"\x00\x28\x00\x28")


def _raw_queue_delete(kw: dict) -> bytes:
    bits = 4 | (1 if kw.get("if_unused") else 0) | (2 if kw.get("if_empty") else 0)
    return b"\x00\x32\x00\x28" + _RESERVED + _short(kw["queue"]) + bytes((bits,))


def _raw_exchange_delete(kw: dict) -> bytes:
    return b"\x00\x28\x00\x14" + _RESERVED + _short(kw["exchange"]) + bytes((2 | (1 if kw.get("if_unused") else 0),))


# queue.unbind has no nowait bit in AMQP 0-9-1: it always goes through pika
RAW_METHODS: dict[str, Callable[[dict], bytes]] = {
    "exchange_declare": _raw_exchange_declare, "queue_declare": _raw_queue_declare,
    "queue_bind": _raw_queue_bind, "exchange_bind": _raw_exchange_bind, "exchange_unbind": _raw_exchange_unbind,
    "queue_delete": _raw_queue_delete, "exchange_delete": _raw_exchange_delete,
}


def raw_frame(channel: int, op: Any) -> bytes:
    """The method frame of a nowait ``op`` on ``channel`` (byte for byte what pika would send)."""
    payload = RAW_METHODS[op.method](op.kwargs)
    return struct.pack(">BHI", 1, channel, len(payload)) + payload + b"\xce"


def raw_publish(channel: int, exchange: str, routing_key: str, properties: Any, body: bytes, body_max: int,
                mandatory: bool = False) -> bytes:
    """The frames of one ``basic.publish`` on ``channel``: method, content header (``properties``
    encoded by pika) and body frames of at most ``body_max`` bytes each, byte for byte what pika's
    ``Channel.basic_publish`` writes (``tests/unit/test_amqp_raw.py``), as one string, so that a
    batch of them goes out in one write."""
    method = b"\x00\x3c\x00\x28" + _RESERVED + _short(exchange) + _short(routing_key) + (b"\x01" if mandatory else b"\x00")
    header = struct.pack(">HxxQ", 60, len(body)) + b"".join(properties.encode())
    parts = [struct.pack(">BHI", 1, channel, len(method)), method, b"\xce",
             struct.pack(">BHI", 2, channel, len(header)), header, b"\xce"]
    view = memoryview(body)
    for start in range(0, len(body), body_max):
        chunk = view[start:start + body_max]
        parts += [struct.pack(">BHI", 3, channel, len(chunk)), chunk, b"\xce"]
    return b"".join(parts)
