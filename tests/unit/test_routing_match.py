"""Pure matchers against what RabbitMQ 3.10.8 was observed to do.

Data: ``tests/data/routing/broker_observations.json``, copied from
RABBITMQ-SEMANTICS.md section 5.2 (81 rows) and ``semantics-experiments.json``
(the 1,480-pair topic matrix and the 500-row headers matrix). Hypothesis checks the
trie against the plain reference matcher.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from topoform.routing.index import TopicTrie
from topoform.routing.match import (InvalidXMatch, header_value_equal, headers_matches, parse_x_match,
                                    split_words, topic_matches)

DATA = json.loads((Path(__file__).resolve().parents[1] / "data" / "routing" / "broker_observations.json")
                  .read_text(encoding="utf-8"))


def reference_topic_match(binding_key: str, routing_key: str) -> bool:
    """The recursive definition of RABBITMQ-SEMANTICS.md section 5.1, written plainly."""
    pat = tuple(binding_key.split(".")) if binding_key else ()
    words = tuple(routing_key.split(".")) if routing_key else ()

    @lru_cache(maxsize=None)
    def m(i: int, j: int) -> bool:
        if i == len(pat):
            return j == len(words)
        if pat[i] == "#":
            return any(m(i + 1, k) for k in range(j, len(words) + 1))
        if j == len(words):
            return False
        return (pat[i] == "*" or pat[i] == words[j]) and m(i + 1, j + 1)

    return m(0, 0)


def trie_match(binding_key: str, routing_key: str) -> bool:
    return bool(TopicTrie([(binding_key, "q")]).match((routing_key,)))


# ---------------------------------------------------------------- topic: broker tables

@pytest.mark.parametrize("row,binding_key,routing_key,delivered", DATA["topic_table_81"],
                         ids=[f"row{r[0]}" for r in DATA["topic_table_81"]])
def test_topic_verified_table_81_rows(row, binding_key, routing_key, delivered):
    assert topic_matches(binding_key, routing_key) is delivered
    assert trie_match(binding_key, routing_key) is delivered


def test_topic_full_broker_matrix_1480_pairs_pure_matcher():
    rows = DATA["topic_matrix"]
    assert len(rows) == 1480 and sum(1 for r in rows if r[2]) == 361
    wrong = [(b, r, m) for b, r, m in rows if topic_matches(b, r) is not m]
    assert wrong == []


def test_topic_full_broker_matrix_1480_pairs_one_trie_per_exchange():
    """All 37 binding keys in one trie (as on one exchange), each of the 40 keys looked up once."""
    rows = DATA["topic_matrix"]
    binding_keys = sorted({b for b, _, _ in rows})
    trie = TopicTrie([(b, b) for b in binding_keys])
    expected: dict[str, set] = {}
    for b, r, m in rows:
        expected.setdefault(r, set())
        if m:
            expected[r].add(b)
    for routing_key, want in expected.items():
        got = trie.match((routing_key,))
        assert len(got) == len(set(got)), f"{routing_key!r}: a binding returned twice"
        assert set(got) == want, routing_key


@pytest.mark.parametrize("binding_key,routing_key,expected", [
    ("#", "", True), ("*", "", False), ("", "", True), ("", "a", False),
    ("a..b", "a..b", True), ("a..b", "a.b", False), (".a", ".a", True), ("a.", "a.", True),
    ("*.*", ".", True), ("#.#.#.#", "", True), ("#.a.#.b.#", "x.a.y.b.z", True), ("#.a.#.b.#", "b.a", False),
    ("a*b", "axb", False), ("ab#", "ab.x", False), ("#a", "a", False),
])
def test_topic_edge_cases(binding_key, routing_key, expected):
    assert topic_matches(binding_key, routing_key) is expected
    assert trie_match(binding_key, routing_key) is expected


def test_topic_255_byte_keys():
    long_key = ".".join(["w" * 9] * 25) + ".abcde"  # 255 bytes
    assert len(long_key.encode()) == 255
    for pattern in ("#", "w*.#", "#.abcde", "*.#", "#.*"):
        expected = reference_topic_match(pattern, long_key)
        assert topic_matches(pattern, long_key) is expected
        assert trie_match(pattern, long_key) is expected
    assert topic_matches(long_key, long_key) and trie_match(long_key, long_key)
    many_empty = "." * 254  # 255 empty words
    assert topic_matches("#", many_empty) and topic_matches("#.#.#", many_empty)
    assert not topic_matches("*", many_empty)
    assert trie_match("#.#.#", many_empty) and trie_match("*.#.*.#", many_empty)


def test_split_words_keeps_empty_words_and_empty_key_is_no_words():
    assert split_words("") == ()
    assert split_words(".") == ("", "")
    assert split_words("a..b") == ("a", "", "b")


# ---------------------------------------------------------------- topic: property-based

WORDS = st.sampled_from(["a", "b", "", "ab", "*", "#", "a*b", "é"])
PATTERN_WORDS = st.sampled_from(["a", "b", "", "ab", "*", "#", "a*b", "#a", "é"])


def _key(words):
    return ".".join(words) if words else ""


keys = st.one_of(st.just(""), st.lists(WORDS, min_size=1, max_size=7).map(_key))
patterns = st.one_of(st.just(""), st.lists(PATTERN_WORDS, min_size=1, max_size=6).map(_key))


@settings(max_examples=3000, deadline=None)
@given(patterns, keys)
def test_matchers_agree_with_reference(binding_key, routing_key):
    expected = reference_topic_match(binding_key, routing_key)
    assert topic_matches(binding_key, routing_key) is expected
    assert trie_match(binding_key, routing_key) is expected


@settings(max_examples=400, deadline=None)
@given(st.lists(patterns, min_size=1, max_size=40), st.lists(keys, min_size=1, max_size=10))
def test_trie_of_many_bindings_agrees_with_reference_scan(binding_keys, routing_keys):
    trie = TopicTrie([(b, i) for i, b in enumerate(binding_keys)])
    for rk in routing_keys:
        got = trie.match((rk,))
        assert len(got) == len(set(got)), "each binding at most once"
        assert set(got) == {i for i, b in enumerate(binding_keys) if reference_topic_match(b, rk)}


# ---------------------------------------------------------------- headers

def _decode(v):
    """A typed value from the experiments JSON as a Python value (the router's input)."""
    t, value = v["type"], v["value"]
    if t == "array":
        return [_decode(x) for x in value]
    if t == "bytearray":
        return value.encode()
    if t == "double":
        return float(value)
    return value  # longstr, signedint, long, bool, void


def _table(t):
    return None if t is None else {k: _decode(v) for k, v in t.items()}


@pytest.mark.parametrize("row", DATA["headers_matrix"], ids=lambda r: f"{r['binding']} | {r['message']}")
def test_headers_broker_matrix_500_rows(row):
    assert headers_matches(_table(row["binding_args"]), _table(row["message_headers"])) is row["matches"]


def test_headers_numeric_equality_version_switch():
    assert headers_matches({"n": 1}, {"n": 1.0})
    assert not headers_matches({"n": 1}, {"n": 1.0}, exact_numbers=True)
    assert headers_matches({"n": 1}, {"n": 1}, exact_numbers=True)
    assert headers_matches({"n": 2.5}, {"n": 2.5}, exact_numbers=True)
    assert headers_matches({"a": "1"}, {"a": b"1"}, exact_numbers=True)


@pytest.mark.parametrize("binding_value,header_value,expected", [
    (1, True, False), (True, 1, False), (True, True, True), ("true", True, False),
    (1, "1", False), ("1", 1, False), (1, 1.0, True), (1.0, 1, True), (1, 1.5, False),
    ("a", b"a", True), (b"a", "a", True), ("é", "é".encode(), True), ("A", "a", False),
    ([1, 2], [1, 2], True), ([1, 2], (1, 2), True), ([1, 2], [2, 1], False), ([1], [1.0], False),
    (["a"], [b"a"], False), ({"k": 1}, {"k": 1}, True), ({"k": 1}, {"k": "1"}, False),
    ("1", None, False), (0, False, False),
])
def test_header_value_equality_3_10(binding_value, header_value, expected):
    assert header_value_equal(binding_value, header_value) is expected


@pytest.mark.parametrize("args,headers,expected", [
    ({}, None, True), ({}, {}, True), ({"x-match": "all"}, None, True), ({"x-match": "any"}, {"a": 1}, False),
    ({"x-match": "all", "x-k": "v"}, {}, True), ({"x-match": "any", "x-k": "v"}, {"x-k": "v"}, False),
    ({"x-match": "all-with-x", "x-k": "v"}, {"x-k": "v"}, True),
    ({"x-match": "all-with-x", "x-k": "v"}, {"x-k": "w"}, False),
    ({"x-match": "any-with-x", "x-k": "v", "a": "zz"}, {"x-k": "v"}, True),
    ({"x-match": "any-with-x"}, {"x-k": "v"}, False),
    ({"x-match": "all", "a": None}, {"a": None}, True), ({"x-match": "all", "a": None}, {"b": 1}, False),
    ({"x-match": "any", "a": None, "b": 2}, {"a": "anything"}, True),
    ({"A": "1"}, {"a": "1"}, False),
])
def test_headers_x_match_rules(args, headers, expected):
    assert headers_matches(args, headers) is expected


@pytest.mark.parametrize("value", ["ALL", "none", 1, "", b"all"])
def test_invalid_x_match_is_refused(value):
    with pytest.raises(InvalidXMatch):
        parse_x_match({"x-match": value})
