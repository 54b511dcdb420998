"""Offline routing simulation: where a published message goes, exactly as the broker decides.

``Router(topology)`` builds per-exchange indexes (a word trie for topic exchanges, hash
maps for direct, binding lists for fanout and headers) once, lazily per exchange;
``router.route(vhost, exchange, routing_key, headers)`` answers with a
:class:`RouteResult`. The pure matchers live in :mod:`topoform.routing.match`.
Imports only ``errors`` and ``model``: no YAML, no broker, no printing.

>>> from topoform.routing import Router                           # doctest: +SKIP
>>> Router(topology).route("/", "topic_logs", "lazy.pink.rabbit").queues  # doctest: +SKIP
('Q2',)
"""
from .match import headers_matches, split_words, topic_matches
from .simulate import BUILTIN_EXCHANGES, Hop, Route, RouteResult, Router, RoutingError, route
from .super_streams import with_super_streams

__all__ = ["Router", "RouteResult", "Route", "Hop", "RoutingError", "route", "topic_matches",
           "headers_matches", "split_words", "BUILTIN_EXCHANGES", "with_super_streams"]
