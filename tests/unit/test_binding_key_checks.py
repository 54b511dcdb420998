"""validate's suspicious-binding-key warnings (validate_rules._check_binding_key), offline.

That the broker routes these keys as the warnings say is shown on each broker by
tests/integration/test_routing_broker.py::test_the_binding_keys_validate_warns_about_route_as_it_says.
"""
from __future__ import annotations

import pytest

from topoform.load import load_text


def _warnings(exchange: str, key: str, xtype: str = "topic") -> list:
    declared = "" if exchange.startswith("amq.") else f"    exchanges: {{{exchange}: {{type: {xtype}}}}}\n"
    loaded = load_text(f"vhosts:\n  v:\n{declared}    queues:\n"
                       f"      q: {{durable: true, bindings: [{{exchange: {exchange}, routing_key: {key!r}}}]}}\n")
    assert loaded.ok
    return [f for f in loaded.findings if f.code == "suspicious-binding-key"]


@pytest.mark.parametrize("key, says, hint", [
    ("order#", "has 'order#', a literal word", "did you mean 'order.#'?"),
    ("#order", "has '#order', a literal word", "did you mean '#.order'?"),
    ("order.*created", "has '*created'", "did you mean 'order.*.created'?"),
    ("a*b.c", "has 'a*b'", "did you mean 'a.*.b.c'?"),
    ("order..created", "an empty word", "did you mean 'order.created'?"),
    (".order", "an empty word", "did you mean 'order'?"),
    ("order.", "an empty word", "did you mean 'order'?"),
    ("order.created ", "spaces around it", "write 'order.created'"),
])
def test_topic_keys_that_route_other_than_they_read_warn_with_the_key_meant(key, says, hint):
    (finding,) = _warnings("ev", key)
    assert finding.severity == "warning" and says in finding.message and finding.hint == hint
    assert finding.position is not None and finding.position.line == 5


@pytest.mark.parametrize("key", ["order.*.created", "#", "*", "order.#", "#.error", "*.*", "", "a.b-c_d", "é.*"])
def test_ordinary_topic_keys_are_quiet(key):
    assert _warnings("ev", key) == []


def test_amq_topic_is_checked_as_a_topic_exchange():
    assert [f.hint for f in _warnings("amq.topic", "logs#")] == ["did you mean 'logs.#'?"]


@pytest.mark.parametrize("exchange, xtype, key, count", [
    ("dx", "direct", "order.*", 1), ("dx", "direct", "#", 1), ("amq.direct", "direct", "a.#", 1),
    ("dx", "direct", "order#", 0),          # a direct key has no words: nothing reads as a wildcard
    ("dx", "direct", "order..x", 0),
    ("fx", "fanout", " # ", 0), ("hx", "headers", "a..b", 0),  # the key is not read at all
])
def test_direct_fanout_and_headers(exchange, xtype, key, count):
    found = _warnings(exchange, key, xtype)
    assert len(found) == count, found
    if count:
        assert "matches literally" in found[0].message
