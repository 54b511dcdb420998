"""``topoform graph``: owner colours and legend, faded external objects, users and permissions,
federation upstreams and shovels (issue 13 item 1, issue 14 item 4), in DOT and Mermaid.

DOT goes through Graphviz (``check_dot``: parses without a warning, renders to SVG, and the
drawn text is read back); Mermaid through the strict validator of test_graph.py. URIs must
never show credentials, user names, paths or queries, and a secret referenced by ``{env: ...}``
must never be read, let alone drawn.
"""
from __future__ import annotations

import re

import pytest
import yaml

from helpers import run_cli
from test_graph import check_dot, check_mermaid
from topoform.graph_links import uri_endpoint

SECRET_URI = "amqps://fed-user:Sup3rS3cretPw@origin.example.com:5671/prod?cacertfile=/etc/ca.pem"


def _write(path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


@pytest.fixture
def two_teams(tmp_path):
    _write(tmp_path / "orders" / "topology.yaml", {
        "owner": "team-orders",
        "vhosts": {"shop": {
            "owns": ["orders.*"],
            "external": {"exchanges": ["events"], "queues": ["audit"]},
            "exchanges": {"orders.x": {"type": "topic", "durable": True}},
            "queues": {"orders.paid": {"durable": True, "bindings": [
                {"exchange": "events", "routing_key": "order.paid"}, {"exchange": "orders.x", "routing_key": "#"}]}},
            "super_streams": {"orders.inv": {"partitions": 2}}}}})
    _write(tmp_path / "audit" / "topology.yaml", {
        "owner": "team-audit",
        "vhosts": {"shop": {
            "owns": ["audit", "events"],
            "exchanges": {"events": {"type": "topic", "durable": True}},
            "queues": {"audit": {"durable": True, "bindings": [{"exchange": "events", "routing_key": "#"}]}}}}})
    return tmp_path


@pytest.fixture
def config_files(tmp_path):
    _write(tmp_path / "topoform.yaml", {
        "users": {"app-orders": {"tags": ["monitoring"], "password": {"env": "ORDERS_PASSWORD"}},
                  "ops": {"tags": ["administrator"], "password": {"env": "OPS_PASSWORD"}}},
        "vhosts": {
            "shop": {
                "exchanges": {"orders.x": {"type": "topic", "durable": True}},
                "queues": {"orders": {"durable": True}, "orders.v2": {"durable": True}},
                "policies": {"fed": {"pattern": "^orders\\.x$", "apply_to": "exchanges",
                                     "definition": {"federation-upstream-set": "all-origins"}}},
                "permissions": {"app-orders": {"configure": "^orders\\.", "write": "^orders\\.", "read": ""}},
                "topic_permissions": {"app-orders": {"amq.topic": {"write": "^orders\\.", "read": ".*"}}},
                "federation_upstreams": {"origin": {"uri": {"env": "ORIGIN_URI"}, "expires": 3600000},
                                         "sibling": {"uri": "amqp:///backup"}},
                "federation_upstream_sets": {"all-origins": [{"upstream": "origin"}]},
                "shovels": {
                    "drain-old": {"src-uri": {"env": "OLD_URI"}, "src-queue": "legacy",
                                  "dest-uri": "amqp:///shop", "dest-queue": "orders.v2"},
                    "to-eu": {"src-uri": "amqp:///shop", "src-queue": "orders",
                              "dest-uri": "amqps://bob@rabbit-eu.example:5671/eu%2Fvh?heartbeat=5",
                              "dest-queue": "inbox"}}},
            "backup": {"queues": {"kept": {"durable": True}}}}})
    return tmp_path


def _graph(cwd, *argv, environ=None) -> str:
    r = run_cli(["graph", *argv], cwd=cwd, environ=environ or {})
    assert r.code == 0, r
    return r.out


def _dot_nodes(text: str) -> dict[str, dict]:
    """DOT node id -> its attributes (as the renderer wrote them)."""
    out = {}
    for m in re.finditer(r"^\s*([a-z]\d+) \[(.*)\];$", text, re.M):
        out[m[1]] = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m[2]))
    return out


def _by_label(nodes: dict) -> dict[str, str]:
    return {lines[0]: node_id for node_id, lines in nodes.items()}


# ---------------------------------------------------------------- owners and external objects

def test_dot_colour_by_owner_fills_each_team_in_its_colour_with_a_legend(two_teams):
    text = _graph(two_teams, "-f", "orders", "-f", "audit", "--format", "dot", "--color-by", "owner")
    drawn = check_dot(text)
    attrs = _dot_nodes(text)
    ids = _by_label(drawn["nodes"])
    legend = {attrs[i]["label"]: attrs[i]["fillcolor"] for i in attrs if i.startswith("k")}
    assert set(legend) == {"team-orders", "team-audit"} and len(set(legend.values())) == 2
    for name, team in (("orders.x", "team-orders"), ("orders.paid", "team-orders"), ("orders.inv", "team-orders"),
                       ("orders.inv-0", "team-orders"), ("events", "team-audit"), ("audit", "team-audit")):
        assert attrs[ids[name]]["fillcolor"] == legend[team], name
    assert "cluster_legend" in text


def test_mermaid_colour_by_owner_classes_and_legend(two_teams):
    text = _graph(two_teams, "-f", "orders", "-f", "audit", "--color-by", "owner")
    parsed = check_mermaid(text)
    ids = _by_label(parsed["nodes"])
    classes = {m[2]: set(m[1].split(",")) for m in re.finditer(r"^  class (\S+) (\S+)$", text, re.M)}
    defs = dict(re.findall(r"^  classDef (owner\d+) (\S+)$", text, re.M))
    legend = {parsed["nodes"][k][0]: k for k in parsed["nodes"] if k.startswith("k")}
    assert set(legend) == {"team-orders", "team-audit"}
    for team, members in (("team-orders", ["orders.x", "orders.paid", "orders.inv-1"]), ("team-audit", ["events"])):
        cls = next(c for c, m in classes.items() if legend[team] in m)
        assert cls in defs and {ids[n] for n in members} <= classes[cls]
    assert defs[next(c for c, m in classes.items() if legend["team-orders"] in m)] != \
        defs[next(c for c, m in classes.items() if legend["team-audit"] in m)]


def test_external_objects_are_faded_in_both_formats(two_teams):
    text = _graph(two_teams, "-f", "orders", "--format", "dot")
    drawn, attrs = check_dot(text), _dot_nodes(text)
    ids = _by_label(drawn["nodes"])
    for name in ("events", "audit"):
        a = attrs[ids[name]]
        assert "dashed" in a["style"] and a["color"] == "#9e9e9e" and a["fontcolor"] == "#9e9e9e", a
        assert drawn["nodes"][ids[name]][1] == "external"
    assert "dashed" not in attrs[ids["orders.x"]]["style"]
    mermaid = _graph(two_teams, "-f", "orders")
    parsed = check_mermaid(mermaid)
    ids = _by_label(parsed["nodes"])
    external = re.search(r"^  class (\S+) external$", mermaid, re.M)
    assert external and set(external[1].split(",")) == {ids["events"], ids["audit"]}
    assert re.search(r"^  classDef external .*stroke-dasharray", mermaid, re.M)
    # with the other team's files the objects are declared, not external
    both = _graph(two_teams, "-f", "orders", "-f", "audit")
    assert "external" not in {lines[-1] for lines in check_mermaid(both)["nodes"].values()}
    assert not re.search(r"^  class \S+ external$", both, re.M)


def test_colour_by_owner_without_owner_labels_says_no_owner(tmp_path):
    _write(tmp_path / "topoform.yaml", {"vhosts": {"/": {"queues": {"q": {"durable": True}}}}})
    text = _graph(tmp_path, "--format", "dot", "--color-by", "owner")
    attrs = _dot_nodes(text)
    assert [a["label"] for i, a in attrs.items() if i.startswith("k")] == ["(no owner)"]
    check_dot(text)


# ---------------------------------------------------------------- users and permissions

def test_users_and_permissions_are_drawn_with_their_patterns(config_files):
    text = _graph(config_files, "--format", "dot")
    drawn = check_dot(text)
    ids = _by_label(drawn["nodes"])
    assert drawn["nodes"][ids["app-orders"]] == ["app-orders", "monitoring"]
    assert drawn["nodes"][ids["ops"]] == ["ops", "administrator"]  # declared, no permission here
    edges = {(s, d): label for s, d, label, _ in drawn["edges"]}
    assert edges[(ids["app-orders"], ids["vhost shop"])] == "configure: ^orders\\.\nwrite: ^orders\\.\nread: (none)"
    assert edges[(ids["app-orders"], ids["amq.topic"])] == "topic write: ^orders\\.\nread: .*"
    mermaid = check_mermaid(_graph(config_files))
    mids = _by_label(mermaid["nodes"])
    assert mids["app-orders"].startswith("u") and mids["vhost shop"].startswith("h")
    assert (mids["app-orders"], mids["vhost shop"], "-->", "configure: ^orders\\.") in mermaid["edges"]


def test_hide_users_and_links(config_files):
    text = _graph(config_files, "--format", "dot", "--hide", "users", "--hide", "links")
    labels = {lines[0] for lines in check_dot(text)["nodes"].values()}
    assert "app-orders" not in labels and not any(label.startswith(("vhost ", "env:", "amqp")) for label in labels)
    assert "orders.x" in labels
    only_links = _graph(config_files, "--format", "dot", "--hide", "users")
    labels = {lines[0] for lines in check_dot(only_links)["nodes"].values()}
    assert "app-orders" not in labels and "env:ORIGIN_URI" in labels


def test_vhost_filter_keeps_only_its_users(config_files):
    text = _graph(config_files, "--format", "dot", "--vhost", "backup")
    labels = {lines[0] for lines in check_dot(text)["nodes"].values()}
    assert labels == {"kept"}


# ---------------------------------------------------------------- federation and shovels

def test_federation_and_shovel_links_never_show_credentials(config_files):
    environ = {"ORIGIN_URI": SECRET_URI, "OLD_URI": SECRET_URI, "ORDERS_PASSWORD": "Sup3rS3cretPw"}
    for fmt in ("dot", "mermaid"):
        text = _graph(config_files, "--format", fmt, environ=environ)
        for piece in ("Sup3rS3cretPw", "fed-user", "origin.example.com", "bob", "heartbeat", "eu%2Fvh", "cacert"):
            assert piece not in text, (fmt, piece)
    text = _graph(config_files, "--format", "dot", environ=environ)
    drawn = check_dot(text)
    ids = _by_label(drawn["nodes"])
    edges = {(s, d): label for s, d, label, _ in drawn["edges"]}
    # federation: from the remote (by reference) to the exchange the policy federates (through the set)
    assert edges[(ids["env:ORIGIN_URI"], ids["orders.x"])] == "federation origin"
    assert drawn["nodes"][ids["env:ORIGIN_URI"]] == ["env:ORIGIN_URI", "broker"]
    # a host-less URI is this broker: an arrow between vhosts
    assert edges[(ids["vhost backup"], ids["vhost shop"])] == "federation sibling"
    # shovels: remote -> local queue, local queue -> remote host (host and port only)
    assert edges[(ids["env:OLD_URI"], ids["orders.v2"])] == "shovel drain-old\nsrc-queue: legacy"
    assert edges[(ids["orders"], ids["amqps://rabbit-eu.example:5671"])] == "shovel to-eu\ndest-queue: inbox"
    colours = {label.split("\n")[0]: colour for _, _, label, colour in drawn["edges"]}
    assert colours["federation origin"] != colours["shovel to-eu"]
    check_mermaid(_graph(config_files, environ=environ))


@pytest.mark.parametrize("uri, expected", [
    ("amqp://", ("vhost", "/")),
    ("amqp:///shop", ("vhost", "shop")),
    ("amqp:///a%2Fb", ("vhost", "a/b")),
    ("amqp://user:***@host.example", ("remote", "amqp://host.example")),
    ("amqps://u:p@h.example:5671/v?x=1", ("remote", "amqps://h.example:5671")),
    ("amqp://[::1]:5672/v", ("remote", "amqp://[::1]:5672")),
    ("not a uri", None),
    (42, None),
])
def test_uri_endpoint_is_host_only(uri, expected):
    assert uri_endpoint(uri) == expected


def test_bad_color_by_is_a_one_line_usage_error(config_files):
    r = run_cli(["graph", "--color-by", "team"], cwd=config_files)
    assert r.code != 0 and "invalid choice" in r.err and "Traceback" not in r.err
