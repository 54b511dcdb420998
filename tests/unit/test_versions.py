"""The supported versions, version parsing, the behaviour rows and target resolution."""
from __future__ import annotations

import pytest

from topoform import versions as V
from topoform.errors import InputError


def test_supported_range_default_and_tested():
    assert V.SUPPORTED[0] == "3.10" and V.SUPPORTED[-1] == "4.3"
    assert V.DEFAULT == "4.3"
    assert set(V.TESTED) <= set(V.SUPPORTED)
    # sorted oldest to newest, as numbers (3.10 after 3.9 would sort wrongly as text)
    assert [V.parse_version(s) for s in V.SUPPORTED] == sorted(V.parse_version(s) for s in V.SUPPORTED)


@pytest.mark.parametrize("text, expected", [
    ("4.3", (4, 3)), ("4.3.6", (4, 3)), ("3.10.8", (3, 10)), (" 4.0 ", (4, 0)), ("3.13.7-1", (3, 13)),
    ((4, 1), (4, 1)), ((4, 2, 0), (4, 2)),
])
def test_parse_version_accepts(text, expected):
    assert V.parse_version(text) == expected


@pytest.mark.parametrize("text, words", [
    ("banana", "invalid"), ("4", "invalid"), ("", "invalid"), ("4.x", "invalid"),
    ("3.9", "unsupported"), ("4.4", "unsupported"), ("2.8.1", "unsupported"), ("5.0", "unsupported"),
])
def test_parse_version_refuses_with_one_line_listing_range(text, words):
    with pytest.raises(InputError) as info:
        V.parse_version(text)
    message = info.value.message
    assert words in message and "\n" not in message
    assert "3.10 to 4.3" in message


def test_parse_version_float_explains_quoting():
    with pytest.raises(InputError, match="quote it"):
        V.parse_version(3.1)


def test_parse_version_unsupported_allowed_when_asked():
    assert V.parse_version("4.4.1", supported_only=False) == (4, 4)


def test_at_least_compares_numerically():
    assert V.at_least((3, 10), "3.9")  # not text order
    assert V.at_least("4.0.5", "4.0")
    assert not V.at_least("3.13", "4.0")
    assert V.at_least("4.3", (4, 3))


def test_rows_are_unique_and_well_formed():
    keys = [b.key for b in V.BEHAVIOURS]
    assert len(keys) == len(set(keys))
    for b in V.BEHAVIOURS:
        assert b.description and "\n" not in b.description
        assert b.evidence
        for end in (b.since, b.until):
            if end is not None:
                assert end in V.SUPPORTED, (b.key, end)
        if b.since and b.until:
            assert V.parse_version(b.since) < V.parse_version(b.until)


REQUIRED = {
    "classic_queue_type_stored": "4.0", "ha_policies_refused": "4.0", "queue_master_locator_refused": "4.3",
    "queue_version_1_refused": "4.3", "topic_max_two_hash": "4.3", "policy_apply_to_queue_types": "3.12",
    "transient_nonexcl_deprecated": "4.0", "headers_numeric_strict": "3.13",
    "exports_omit_internal_exchanges": "4.3", "policies_without_vhost_in_export": "4.0",
    "quorum_default_delivery_limit": "4.0", "local_random_exchange": "4.0", "modulus_hash_exchange": "4.3",
    "unknown_exchange_type_is_channel_error": "4.0", "passive_declare_needs_configure": "4.3",
}


@pytest.mark.parametrize("key, since", sorted(REQUIRED.items()))
def test_has_switches_exactly_at_since(key, since):
    index = V.SUPPORTED.index(since)
    for version in V.SUPPORTED[index:]:
        assert V.has(version, key), (key, version)
    for version in V.SUPPORTED[:index]:
        assert not V.has(version, key), (key, version)


def test_rows_between_tested_versions_cite_release_notes_or_source():
    """A row whose switch is not a tested version must say where it comes from."""
    for b in V.BEHAVIOURS:
        if b.since and b.since not in V.TESTED:
            assert "release" in b.evidence or "source" in b.evidence or "PR" in b.evidence, b.key


def test_master_locator_deprecated_only_4_0_to_4_2():
    row = V.behaviour("queue_master_locator_deprecated")
    assert [v for v in V.SUPPORTED if row.holds(v)] == ["4.0", "4.1", "4.2"]
    assert row.versions == "4.0 to 4.2"
    assert V.behaviour("topic_max_two_hash").versions == "4.3+"


def test_unknown_key_is_an_error():
    with pytest.raises(KeyError):
        V.has("4.3", "no_such_behaviour")


def test_resolve_target_order():
    env = {V.ENV_VAR: "4.0"}
    assert V.resolve_target("3.10", env, "4.1", "4.2.0") == ("3.10", "flag")
    assert V.resolve_target(None, env, "4.1", "4.2.0") == ("4.0", "env")
    assert V.resolve_target(None, {}, "4.1", "4.2.0") == ("4.1", "files")
    assert V.resolve_target(None, {}, None, "4.2.0") == ("4.2", "state")
    assert V.resolve_target(None, {}, None, None) == (V.DEFAULT, "default")
    assert V.resolve_target("", {V.ENV_VAR: ""}, None, None) == (V.DEFAULT, "default")


def test_resolve_target_names_the_source_of_a_bad_version():
    with pytest.raises(InputError, match="TOPOFORM_RABBITMQ_VERSION.*unsupported"):
        V.resolve_target(None, {V.ENV_VAR: "3.8"}, None, None)
    with pytest.raises(InputError, match="--rabbitmq-version.*invalid"):
        V.resolve_target("latest", {}, None, None)


def test_docs_table_is_the_rows_own_rendering():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "versions.md").read_text(encoding="utf-8")
    assert V.rows_markdown() in doc, "docs/versions.md is stale: paste topoform.versions.rows_markdown() into it"
    for b in V.BEHAVIOURS:
        assert f"| `{b.key}` |" in doc
