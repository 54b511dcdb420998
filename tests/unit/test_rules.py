"""The rules table: verdicts, evidence pointers, reasons naming the field."""
import re
from pathlib import Path

import pytest

from topoform.planner import rules
from topoform.planner.rules import IGNORES, IN_PLACE, LOCKS, REJECTS, classify_change, data_loss_reason, rule_for

SEMANTICS = Path("/work/shared/RABBITMQ-SEMANTICS.md")


@pytest.mark.parametrize("field,qtype,verdict", [
    ("durable", "classic", REJECTS),
    ("auto_delete", "quorum", REJECTS),
    ("exclusive", "classic", LOCKS),
    ("arguments.x-message-ttl", "classic", REJECTS),
    ("arguments.x-message-ttl", "quorum", REJECTS),
    ("arguments.x-max-priority", "classic", REJECTS),
    ("arguments.x-max-priority", "quorum", IGNORES),
    ("arguments.x-delivery-limit", "classic", IGNORES),
    ("arguments.x-delivery-limit", "quorum", REJECTS),
    ("arguments.x-queue-type", "classic", REJECTS),
    ("arguments.x-foo", "classic", IGNORES),
    ("arguments.x-foo", "quorum", IGNORES),
    ("arguments.x-max-age", "classic", IGNORES),
])
def test_queue_verdicts_depend_on_the_existing_queue_type(field, qtype, verdict):
    assert rule_for("queue", field, qtype).verdict == verdict


@pytest.mark.parametrize("field,verdict", [
    ("type", REJECTS), ("durable", REJECTS), ("auto_delete", REJECTS), ("internal", REJECTS),
    ("arguments.alternate-exchange", REJECTS), ("arguments.x-foo", IGNORES),
])
def test_exchange_verdicts(field, verdict):
    assert rule_for("exchange", field).verdict == verdict


def test_policies_and_vhost_settings_change_in_place():
    for kind, field in (("policy", "pattern"), ("policy", "definition.message-ttl"), ("policy", "priority"),
                        ("policy", "apply_to"), ("vhost", "description"), ("vhost", "tags"),
                        ("vhost", "default_queue_type")):
        assert rule_for(kind, field).verdict == IN_PLACE


def test_every_row_points_at_an_existing_section_of_the_semantics_file():
    text = SEMANTICS.read_text() if SEMANTICS.exists() else None
    for row in rules.RULES:
        sections = re.findall(r"(\d+(?:\.\d+)?)", row.evidence)
        assert sections, row
        if text:
            for s in sections:
                assert re.search(rf"^#+ {re.escape(s)}[ .]", text, re.M), (row, s)


def test_replayable_rows_cover_every_verified_reject_and_ignore():
    replay = rules.rows_for_replay()
    assert replay and all(r.verified for r in replay)
    assert {r.verdict for r in replay} == {REJECTS, IGNORES, LOCKS}


def test_blocked_reason_names_the_field_and_the_406():
    v = classify_change("queue", "payments", ["arguments.x-message-ttl"], queue_type="classic")
    assert v.action == "blocked"
    assert "arguments.x-message-ttl" in v.reason and "406" in v.reason and "crash" in v.reason


def test_blocked_reason_says_a_policy_could_carry_the_setting():
    v = classify_change("queue", "payments", ["arguments.x-message-ttl"], queue_type="classic")
    assert "a policy can carry message-ttl" in v.reason
    v = classify_change("exchange", "x", ["arguments.alternate-exchange"])
    assert "a policy can carry alternate-exchange" in v.reason


def test_ignored_argument_is_blocked_saying_the_old_value_is_kept():
    v = classify_change("queue", "q", ["arguments.x-foo"], queue_type="classic")
    assert v.action == "blocked"
    assert "silently keep the old value of arguments.x-foo" in v.reason and "406" not in v.reason


def test_argument_of_another_type_is_ignored_by_a_quorum_queue():
    v = classify_change("queue", "q", ["arguments.x-max-priority"], queue_type="quorum")
    assert "a quorum queue ignores it" in v.reason


def test_exclusive_change_mentions_405():
    v = classify_change("queue", "q", ["exclusive"], queue_type="classic")
    assert "405 RESOURCE_LOCKED" in v.reason


def test_policy_change_is_an_update_without_reason():
    v = classify_change("policy", "p", ["definition.max-length", "pattern"])
    assert (v.action, v.reason) == ("update", "")


def test_reason_is_one_sentence():
    v = classify_change("queue", "q", ["durable", "arguments.x-foo", "arguments.x-expires"], queue_type="classic")
    assert v.reason.count(". ") == 0 and v.reason.endswith(".")
    assert "durable" in v.reason and "arguments.x-expires" in v.reason


def test_data_loss_reason():
    assert data_loss_reason("q", 0) is None
    assert "holds 3 messages" in data_loss_reason("q", 3)
    assert "--allow-data-loss" in data_loss_reason("q", 1)
    assert "may hold messages" in data_loss_reason("q", None, "state-file")
