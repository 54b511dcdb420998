"""A non-ASCII vhost whose definitions export fails (4.0.5 and 4.3.6: 500, or 200 with the body cut
off; tests/integration/test_non_ascii_vhost_broker.py) is read from the per-kind listings, asked once."""
from __future__ import annotations

import pytest
from test_http import _client, server  # noqa: F401 - the fake management API

from topoform.broker.settings import quote_segment


def _listings(h, v):
    h.routes[f"/api/exchanges/{v}"] = (200, [{"name": "x", "type": "topic", "durable": True, "auto_delete": False,
                                              "internal": False, "arguments": {}}])
    h.routes[f"/api/queues/{v}"] = (200, [{"name": "q", "durable": True, "auto_delete": False, "exclusive": False,
                                           "arguments": {}}])
    h.routes[f"/api/bindings/{v}"] = (200, [])
    h.routes[f"/api/policies/{v}"] = (200, [])


@pytest.mark.parametrize("name, answer", [("заказы", (500, b"")),
                                          ("café", (200, b'{"exchanges":[],"policies":[],"explanation":'))])
def test_a_failed_export_of_a_non_ascii_vhost_is_read_from_the_listings(server, name, answer):  # noqa: F811
    srv, h = server
    v = quote_segment(name)
    h.routes[f"/api/definitions/{v}"] = answer
    _listings(h, v)
    client = _client(srv.server_port)
    defs = client.definitions(name)
    assert [x["name"] for x in defs["exchanges"]] == ["x"] and [x["name"] for x in defs["queues"]] == ["q"]
    asked = [path.split("?")[0] for path, _ in h.seen]
    assert asked.count(f"/api/definitions/{v}") == 1  # no retries: it fails every time
    assert not client._definitions_forbidden  # other vhosts still use the export


def test_an_export_that_answers_is_used(server):  # noqa: F811
    srv, h = server
    v = quote_segment("café")
    h.routes[f"/api/definitions/{v}"] = (200, {"exchanges": [], "queues": [{"name": "from-export"}], "bindings": [],
                                               "policies": []})
    _listings(h, v)
    assert [x["name"] for x in _client(srv.server_port).definitions("café")["queues"]] == ["from-export"]
