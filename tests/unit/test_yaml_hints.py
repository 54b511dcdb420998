"""YAML mistakes explained (issue 11 item 9): what is wrong, how to fix it, at the right line and column.

The corpus (tests/corpus/71-75) holds the reported cases; these are the variants.
"""
from __future__ import annotations

import textwrap

import pytest

from topoform.load import load_text

BINDING = """\
vhosts:
  /:
    exchanges: {ev: {type: topic}}
    queues:
      orders:
        durable: true
        bindings:
          - exchange: ev
            routing_key: %s
"""


def errors(text: str) -> list[str]:
    return [f.format() for f in load_text(textwrap.dedent(text), "t.yaml").errors]


@pytest.mark.parametrize("value, col, words", [
    ("*.created", 26, "a value starting with '*' is read as a YAML alias"),
    ("*", 26, 'quote it, routing_key: "*"'),
    ("&x", 26, "is read as a YAML anchor name"),
    ("@x", 26, "a value starting with '@' is reserved in YAML"),
    ("#.created", 26, "'#.created' after the key is a YAML comment"),
    ("#", 26, 'quote it: routing_key: "#"'),
])
def test_unquoted_routing_keys_are_explained_at_their_first_character(value, col, words):
    found = errors(BINDING % value)
    assert len(found) == 1, found
    assert found[0].startswith(f"t.yaml:9:{col}: ") and words in found[0], found[0]
    assert "quote it" in found[0]


def test_quoted_keys_and_comments_after_a_value_are_fine():
    assert errors(BINDING % '"#.created"  # all created events') == []
    assert errors(BINDING % "'*.created'") == []
    assert errors(BINDING % "a.#  # comment") == []


def test_flow_mapping_with_a_hash_value_points_at_the_hash():
    found = errors("""\
        tests:
          - {exchange: ev, routing_key: #.x, expect: []}
    """)
    assert found == ["t.yaml:2:33: invalid YAML: '#.x' starts a YAML comment (a '#' after a space), so the rest of "
                     "the line is lost: quote it, routing_key: \"#.x\""]


def test_star_in_a_route_test_and_in_a_flow_list():
    found = errors('tests:\n  - {exchange: ev, routing_key: *.x, expect: []}\n')
    assert found and found[0].startswith("t.yaml:2:33: ") and 'routing_key: "*.x"' in found[0]


@pytest.mark.parametrize("field, value", [("arguments", "\n        x-message-ttl: 5"), ("durable", " true"),
                                          ("bindings", "\n        - {exchange: ev}")])
def test_a_queue_field_indented_as_a_queue_names_the_queue_above(field, value):
    found = errors(f"vhosts:\n  /:\n    exchanges: {{ev: {{}}}}\n    queues:\n      orders:\n        durable: true\n"
                   f"      {field}:{value}\n")
    assert len(found) == 1, found
    assert found[0].startswith(f"t.yaml:7:7: '{field}' is a field of a queue, but it is indented as a queue name")
    assert "under queue 'orders'" in found[0]


def test_an_exchange_field_and_a_vhost_key_indented_too_far():
    found = errors("vhosts:\n  /:\n    exchanges:\n      ev:\n        type: topic\n      internal: true\n")
    assert found[0].startswith("t.yaml:6:7: 'internal' is a field of an exchange") and "exchange 'ev'" in found[0]
    found = errors("vhosts:\n  /:\n    queues:\n      q: {durable: true}\n      policies:\n"
                   "        p: {pattern: x, definition: {message-ttl: 5}}\n")
    assert len(found) == 1 and found[0].startswith("t.yaml:5:7: 'policies' is a vhost key") \
        and "two fewer spaces" in found[0]


def test_a_queue_named_like_a_field_is_fine_when_it_is_a_queue():
    assert errors("vhosts: {/: {queues: {bindings: {durable: true}}}}\n") == []


def test_queue_bindings_under_the_vhost_point_at_the_bindings_key():
    found = errors("vhosts:\n  /:\n    exchanges: {ev: {}}\n    queues:\n      orders: {durable: true}\n"
                   "    bindings:\n      - {exchange: ev, routing_key: a}\n      - {exchange: ev, routing_key: b}\n")
    assert len(found) == 2, found  # one per binding, not one per schema complaint
    assert all(f.startswith("t.yaml:6:5: ") and "queue 'orders'" in f and "source and destination" in f
               for f in found)


def test_an_unquoted_version_number_says_how_to_quote_it():
    found = errors("rabbitmq_version: 4.0\nvhosts: {}\n")
    assert found == ['t.yaml:1:19: rabbitmq_version must be a string, got the number 4.0: quote it, '
                     'rabbitmq_version: "4.0" (unquoted, YAML reads 3.10 as the number 3.1)']
