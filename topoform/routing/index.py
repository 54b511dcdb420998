"""Per-exchange routing indexes, built once and queried many times.

* :class:`TopicTrie`: a word trie like the broker's (``rabbit_exchange_type_topic``),
  with ``*`` and ``#`` as children of their own; a lookup walks only the branches a
  key can take, so its cost depends on the key and the wildcards near it, not on the
  number of bindings.
* :class:`DirectIndex`: a hash map from binding key to bindings.
* :class:`FanoutIndex`: every binding.
* :class:`HeadersIndex`: the bindings with their ``x-match`` pre-parsed.

Each index answers ``match(routing_keys, headers) -> list``: the payloads of the
bindings whose key (or headers) match, ``match1(routing_key, headers)`` for the usual
single key. A payload is the binding itself unless the index was built with a
``payload`` function (the router stores ``(destination, target exchange or None,
binding)`` tuples, cheaper to read in its inner loop). A message has one routing key plus any
``CC``/``BCC`` keys; a binding may appear once per key that matches it (the simulator
takes the union of destinations). Imports nothing from topoform but ``match``.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, Sequence

from .match import counted_keys, match_counted, parse_x_match

__all__ = ["TopicTrie", "DirectIndex", "FanoutIndex", "HeadersIndex", "build_index", "SIMULATED_TYPES"]

SIMULATED_TYPES = ("direct", "fanout", "topic", "headers")


# A trie node is a 5-slot list (indexing a list is cheaper than probing a dict or
# reading attributes, and a lookup touches a node several times):
_WORDS, _STAR, _HASH, _PAYLOADS, _IS_HASH = range(5)
#   [literal word -> child (dict, or None), "*" child, "#" child, payloads (list or None),
#    True for a node reached through "#"]


def _node(is_hash: bool = False) -> list:
    return [None, None, None, None, is_hash]


class TopicTrie:
    """Topic binding keys indexed for lookup; ``match(routing_keys)`` returns the matching payloads.

    Binding keys without wildcards are a hash map (a match is string equality);
    the others form a word trie like the broker's, with ``*`` and ``#`` children.

    >>> t = TopicTrie([("*.orange.*", "Q1"), ("lazy.#", "Q2"), ("lazy.orange.x", "Q3")])
    >>> sorted(t.match(("lazy.orange.x",)))
    ['Q1', 'Q2', 'Q3']

    Items are ``(binding_key, payload)`` pairs, or objects with a ``routing_key``
    attribute (the payload is then the object itself).
    """

    __slots__ = ("root", "exact", "size")

    def __init__(self, items: Iterable[Any] = ()):
        self.root: list = _node()
        self.exact: dict[str, list] = {}
        self.size = 0
        for item in items:
            if isinstance(item, tuple):
                self.add(item[0], item[1])
            else:
                self.add(item.routing_key, item)

    def add(self, binding_key: str, payload: Any) -> None:
        self.size += 1
        words = binding_key.split(".") if binding_key else []
        if "*" not in words and "#" not in words:
            self.exact.setdefault(binding_key, []).append(payload)
            return
        node = self.root
        for word in words:
            if word == "#":
                nxt = node[_HASH]
                if nxt is None:
                    nxt = node[_HASH] = _node(True)
            elif word == "*":
                nxt = node[_STAR]
                if nxt is None:
                    nxt = node[_STAR] = _node()
            else:
                children = node[_WORDS]
                if children is None:
                    children = node[_WORDS] = {}
                nxt = children.get(word)
                if nxt is None:
                    nxt = children[word] = _node()
            node = nxt
        if node[_PAYLOADS] is None:
            node[_PAYLOADS] = [payload]
        else:
            node[_PAYLOADS].append(payload)

    def lookup(self, routing_key: str) -> list:
        """Payloads whose binding key matches ``routing_key``.

        The trie runs breadth first as an automaton: the frontier holds the nodes
        reachable after the words consumed so far. A ``#`` child joins the frontier
        without consuming a word, and a ``#`` node stays in it while consuming one.
        The trie is a tree, so a node can be reached twice at one position only when
        a ``#`` node both stayed and is joined again from its parent; ``stay`` rules
        that out. So each matching payload is returned once, and ``#.#.#`` costs no
        more than ``#``.
        """
        exact = self.exact.get(routing_key)
        out: list = list(exact) if exact else []
        frontier = [self.root]
        stay = None  # ids of the '#' nodes that are in the frontier because they consumed a word
        for word in (routing_key.split(".") if routing_key else ()):
            literal = word != "*" and word != "#"  # in a routing key these are literal words
            nxt = []
            next_stay = None
            for node in frontier:  # the list grows while iterated: '#' children join it
                h = node[2]
                if h is not None and (stay is None or id(h) not in stay):
                    frontier.append(h)
                if literal:
                    children = node[0]
                    if children is not None:
                        child = children.get(word)
                        if child is not None:
                            nxt.append(child)
                child = node[1]
                if child is not None:
                    nxt.append(child)
                if node[4]:
                    nxt.append(node)
                    if next_stay is None:
                        next_stay = {id(node)}
                    else:
                        next_stay.add(id(node))
            if not nxt:
                return out
            frontier = nxt
            stay = next_stay
        for node in frontier:
            h = node[2]
            if h is not None and (stay is None or id(h) not in stay):
                frontier.append(h)
            payloads = node[3]
            if payloads is not None:
                out.extend(payloads)
        return out

    def match1(self, routing_key: str, headers: Mapping[str, Any] | None = None) -> list:
        return self.lookup(routing_key)

    def match(self, routing_keys: Sequence[str], headers: Mapping[str, Any] | None = None) -> list:
        if len(routing_keys) == 1:
            return self.lookup(routing_keys[0])
        out: list = []
        for key in routing_keys:
            out.extend(self.lookup(key))
        return out


class DirectIndex:
    """Binding key -> bindings; a direct exchange matches byte-for-byte equal keys."""

    __slots__ = ("by_key",)

    def __init__(self, bindings: Iterable[Any] = (), payload: Callable | None = None):
        self.by_key: dict[str, list] = {}
        for b in bindings:
            self.by_key.setdefault(b.routing_key, []).append(payload(b) if payload else b)

    def match1(self, routing_key: str, headers: Mapping[str, Any] | None = None) -> list:
        return self.by_key.get(routing_key, ())

    def match(self, routing_keys: Sequence[str], headers: Mapping[str, Any] | None = None) -> list:
        if len(routing_keys) == 1:
            return self.by_key.get(routing_keys[0], [])
        out: list = []
        for key in routing_keys:
            out.extend(self.by_key.get(key, ()))
        return out


class FanoutIndex:
    """A fanout exchange ignores keys on both sides: every binding matches."""

    __slots__ = ("bindings",)

    def __init__(self, bindings: Iterable[Any] = (), payload: Callable | None = None):
        self.bindings = [payload(b) if payload else b for b in bindings]

    def match1(self, routing_key: str, headers: Mapping[str, Any] | None = None) -> list:
        return self.bindings

    def match(self, routing_keys: Sequence[str], headers: Mapping[str, Any] | None = None) -> list:
        return self.bindings


class HeadersIndex:
    """A headers exchange ignores routing keys; each binding tests the message headers.

    ``exact_numbers`` selects 3.13+ value equality (1 != 1.0); the default is 3.10's.
    A binding with an ``x-match`` the broker refuses at bind time raises
    :class:`InvalidXMatch` when the index is built.
    """

    __slots__ = ("entries", "exact_numbers")

    def __init__(self, bindings: Iterable[Any] = (), payload: Callable | None = None, *,
                 exact_numbers: bool = False):
        self.exact_numbers = exact_numbers
        self.entries = []
        for b in bindings:
            is_all, with_x = parse_x_match(b.arguments)
            self.entries.append((payload(b) if payload else b, is_all, counted_keys(b.arguments, with_x)))

    def match1(self, routing_key: str, headers: Mapping[str, Any] | None = None) -> list:
        return self.match((), headers)

    def match(self, routing_keys: Sequence[str], headers: Mapping[str, Any] | None = None) -> list:
        exact = self.exact_numbers
        return [b for b, is_all, keys in self.entries if match_counted(is_all, keys, headers, exact)]


def build_index(exchange_type: str, bindings: Iterable[Any], payload: Callable | None = None, *,
                exact_numbers: bool = False):
    """The index for one exchange of a simulated type; ``None`` for any other type."""
    if exchange_type == "topic":
        if payload is None:
            return TopicTrie(bindings)
        return TopicTrie((b.routing_key, payload(b)) for b in bindings)
    if exchange_type == "direct":
        return DirectIndex(bindings, payload)
    if exchange_type == "fanout":
        return FanoutIndex(bindings, payload)
    if exchange_type == "headers":
        return HeadersIndex(bindings, payload, exact_numbers=exact_numbers)
    return None


