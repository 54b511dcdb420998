"""topoform.dump: Topology -> YAML is the exact inverse of the loader, stable and readable."""
from __future__ import annotations

import yaml
from hypothesis import HealthCheck, given, settings

from strategies_import_export import topologies
from topoform.dump import dump_topology, dump_vhosts, skipped_comment, vhost_filename
from topoform.fmt import format_text, same_meaning
from topoform.load import load_text
from topoform.model import Args, Binding, Exchange, Policy, Queue, RouteTest, Topology, Vhost


def _load(text: str) -> Topology:
    result = load_text(text, "dumped.yaml", target="3.10")  # the random topologies hold ha-* policies (< 4.0)
    assert not result.errors, "\n".join(f.format() for f in result.errors) + "\n---\n" + text
    return result.topology


def _sample() -> Topology:
    return Topology.build([
        Vhost("/"),
        Exchange("/", "topic_logs", "topic", durable=True, arguments=Args({"alternate-exchange": "unrouted"})),
        Exchange("/", "unrouted", "fanout", durable=True),
        Exchange("/", "h", "headers"),
        Queue("/", "Q1", durable=True, arguments=Args({"x-message-ttl": 60000, "x-queue-type": "quorum"})),
        Queue("/", "Q2"),
        Queue("/", "lost", durable=True),
        Binding("/", "topic_logs", "Q1", routing_key="*.orange.*"),
        Binding("/", "topic_logs", "Q2", routing_key="lazy.#"),
        Binding("/", "h", "Q2", arguments=Args({"x-match": "any", "format": "pdf", "n": 1})),
        Binding("/", "unrouted", "lost"),
        Binding("/", "topic_logs", "h", "exchange", "x.*"),
        Policy("/", "ttl-short", "^short\\.", "queues", 0, Args({"message-ttl": 1000})),
    ], tests=[RouteTest("/", "topic_logs", "lazy.pink.rabbit", expect=("Q2",))])


def test_sample_round_trips_exactly():
    t = _sample()
    assert _load(dump_topology(t)) == t
    assert _load(dump_topology(t)).tests == t.tests


def test_output_is_stable_and_sorted():
    t = _sample()
    text = dump_topology(t)
    assert text == dump_topology(Topology.build(reversed(list(t.resources())), tests=t.tests))
    data = yaml.safe_load(text)
    vhost = data["vhosts"]["/"]
    assert list(vhost["exchanges"]) == sorted(vhost["exchanges"])
    assert list(vhost["queues"]) == sorted(vhost["queues"])


def test_queue_bindings_use_the_sugar_and_e2e_bindings_the_general_form():
    data = yaml.safe_load(dump_topology(_sample()))["vhosts"]["/"]
    assert data["queues"]["Q1"]["bindings"] == [{"exchange": "topic_logs", "routing_key": "*.orange.*"}]
    assert data["queues"]["Q2"]["bindings"][0]["arguments"] == {"format": "pdf", "n": 1, "x-match": "any"}
    assert data["bindings"] == [{"source": "topic_logs", "destination": "h", "destination_type": "exchange",
                                 "routing_key": "x.*"}]


def test_binding_to_a_queue_not_in_the_topology_uses_the_general_form():
    t = Topology.build([Exchange("/", "x"), Binding("/", "x", "elsewhere", routing_key="k")])
    data = yaml.safe_load(dump_topology(t))["vhosts"]["/"]
    assert data["bindings"][0]["destination"] == "elsewhere"


def test_strings_that_look_like_other_types_are_quoted():
    args = {"x-s-int": "60000", "x-s-bool": "true", "x-s-yes": "yes", "x-s-null": "null", "x-s-float": "1.5",
            "x-s-oct": "0o17", "x-s-hex": "0x1F", "x-s-exp": "1e5", "x-s-empty": "", "x-s-tilde": "~",
            "x-int": 60000, "x-bool": True, "x-float": 1.0, "x-big": 2**62, "x-none": None,
            "x-list": [1, "1", True, 1.5], "x-table": {"a": 1, "b": "1", "c": {"d": False}},
            "x-multiline": "a\nb", "x-odd": "a\u2028b\x85c\x07d", "x-pad": " padded "}
    t = Topology.build([Vhost("/"), Queue("/", "q", arguments=Args(args))])
    text = dump_topology(t)
    assert 'x-s-int: "60000"' in text and "x-int: 60000" in text and 'x-s-empty: ""' in text
    back = _load(text).queue("/", "q").arguments
    assert back == Args(args)
    for key, value in args.items():
        assert type(back[key]) is type(Args({key: value})[key]), key


def test_empty_vhost_and_only_non_default_flags_are_written():
    t = Topology.build([Vhost("empty"), Vhost("/"), Exchange("/", "x", "direct", auto_delete=True, internal=True),
                        Queue("/", "q", exclusive=True, auto_delete=True)])
    text = dump_topology(t)
    data = yaml.safe_load(text)
    assert data["vhosts"]["empty"] == {}
    assert data["vhosts"]["/"]["exchanges"]["x"] == {"type": "direct", "durable": False, "auto_delete": True,
                                                     "internal": True}
    assert data["vhosts"]["/"]["queues"]["q"] == {"durable": False, "exclusive": True, "auto_delete": True}
    assert _load(text) == t


def test_vhost_settings_round_trip():
    t = Topology.build([Vhost("v", description="orders", tags=("a", "yes"), default_queue_type="quorum")])
    assert _load(dump_topology(t)) == t
    assert _load(dump_topology(t)).vhosts[("vhost", "v")].tags == ("a", "yes")


def test_header_is_a_comment_block():
    text = dump_topology(_sample(), header=["Imported from x", *skipped_comment({"exclusive queues": 2})])
    lines = text.splitlines()
    assert lines[0] == "# Imported from x"
    assert lines[1] == "# Skipped 2 never-managed objects: exclusive queues: 2."
    assert _load(text) == _sample()


def test_skipped_comment_counts():
    assert skipped_comment({}) == ["Skipped: nothing (no never-managed objects found)."]
    assert skipped_comment({"a": 1, "b": 0}) == ["Skipped 1 never-managed object: a: 1."]


def test_dump_vhosts_splits_per_vhost_and_each_part_loads():
    t = Topology.build([Vhost("/"), Vhost("other"), Queue("/", "a"), Queue("other", "b"), Exchange("other", "x"),
                        Binding("other", "x", "b")])
    parts = dump_vhosts(t)
    assert set(parts) == {"/", "other"}
    assert _load(parts["/"]) == t.in_vhosts(["/"])
    assert _load(parts["other"]) == t.in_vhosts(["other"])


def test_vhost_filenames_are_safe_and_unique():
    taken: set[str] = set()
    assert vhost_filename("/", taken) == "default.yaml"
    assert vhost_filename("orders", taken) == "orders.yaml"
    assert vhost_filename("a/b c", taken) == "a_b_c.yaml"
    assert vhost_filename("a b/c", taken) == "a_b_c-2.yaml"
    assert vhost_filename("..", taken) == "vhost.yaml"
    assert vhost_filename("Orders", taken) == "Orders-2.yaml"  # case-insensitive file systems


def test_long_binding_entries_fall_back_to_block_style():
    args = {f"header-{i}": "v" * 20 for i in range(6)}
    t = Topology.build([Vhost("/"), Exchange("/", "h", "headers"), Queue("/", "q"), Binding("/", "h", "q", arguments=Args(args))])
    text = dump_topology(t)
    assert "          - exchange: h\n" in text and "            arguments:\n              header-0: " in text
    assert "{" not in text.split("bindings:", 1)[1]
    assert _load(text) == t
    assert not format_text(text).changed


def test_short_collections_flow_and_objects_stay_block():
    t = Topology.build([Vhost("/", tags=("a", "b")), Exchange("/", "x", "topic", True),
                        Queue("/", "q", True, arguments=Args({"x-queue-type": "quorum"})),
                        Binding("/", "x", "q", routing_key="*.k"), Binding("/", "x", "q", routing_key="k.#"),
                        Policy("/", "p", "^q$", "queues", 1, Args({"message-ttl": 1000}))])
    text = dump_topology(t)
    assert "    tags: [a, b]\n" in text
    assert "      x:\n        type: topic\n        durable: true\n" in text
    assert "        arguments: {x-queue-type: quorum}\n" in text
    assert "          - {exchange: x, routing_key: \"*.k\"}\n          - {exchange: x, routing_key: k.#}\n" in text
    assert "        definition: {message-ttl: 1000}\n" in text
    assert not format_text(text).changed


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(topologies())
def test_random_topologies_round_trip_exactly(t):
    text = dump_topology(t)
    back = _load(text)
    assert back == t
    assert back.tests == t.tests
    assert dump_topology(back) == text
    formatted = format_text(text).text
    if "\\U" not in text:
        assert formatted == text  # what import writes is what fmt writes
    else:  # U+10FFFF, or an emoji beside a control character: PyYAML escapes it, ruamel.yaml writes it
        assert same_meaning(text, formatted)


def test_long_names_stay_simple_keys():
    t = Topology.build([Vhost("/"), Queue("/", "a" * 250), Queue("/", "404" * 80)])
    text = dump_topology(t)
    assert "? " not in text
    assert _load(text) == t
    assert format_text(text).text == text  # fmt keeps them simple keys too


def test_long_strings_are_never_folded_by_import_or_fmt():
    t = Topology.build([Vhost("v", description=" ".join(["word"] * 1500)), Queue("v", "q", True, arguments=Args(
        {"x-note": "n " * 3000}))])
    text = dump_topology(t)
    assert len(text.splitlines()) == 9 and _load(text) == t
    assert format_text(text).text == text
