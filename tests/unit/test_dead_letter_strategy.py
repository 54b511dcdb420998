"""validate: at-least-once dead-lettering that the broker quietly turns into at-most-once
(validate_rules._check_at_least_once; the broker's behaviour: tests/integration/test_validate_broker.py)."""
from __future__ import annotations

import pytest

from topoform.load import load_text


def _codes(arguments: str, extra: str = "") -> list:
    loaded = load_text(f"vhosts:\n  v:\n    exchanges: {{dlx: {{type: fanout}}}}\n{extra}    queues:\n"
                       f"      orders: {{durable: true, arguments: {{x-queue-type: quorum, {arguments}}}}}\n")
    return [(f.message, f.hint) for f in loaded.findings if f.code == "dead-letter-strategy-ineffective"]


def test_without_reject_publish_it_warns_naming_the_overflow_and_the_fix():
    (got,) = _codes("x-dead-letter-strategy: at-least-once, x-dead-letter-exchange: dlx")
    assert "with drop-head the broker falls back to at-most-once" in got[0] and got[1] == "add x-overflow: reject-publish"
    (got,) = _codes("x-dead-letter-strategy: at-least-once, x-dead-letter-exchange: dlx, x-overflow: drop-head")
    assert "with drop-head" in got[0]


def test_without_a_dead_letter_exchange_it_warns():
    (got,) = _codes("x-dead-letter-strategy: at-least-once, x-overflow: reject-publish")
    assert "no x-dead-letter-exchange" in got[0]


@pytest.mark.parametrize("arguments", [
    "x-dead-letter-strategy: at-least-once, x-dead-letter-exchange: dlx, x-overflow: reject-publish",
    "x-dead-letter-strategy: at-most-once, x-dead-letter-exchange: dlx",
    "x-dead-letter-exchange: dlx",
])
def test_complete_or_at_most_once_settings_are_quiet(arguments):
    assert _codes(arguments) == []


@pytest.mark.parametrize("policy, quiet", [
    ("policies: {p: {pattern: ^orders$, apply_to: queues, definition: {overflow: reject-publish}}}", True),
    ("policies: {p: {pattern: ^ord, definition: {overflow: reject-publish}}}", True),
    ("policies: {p: {pattern: ^other$, apply_to: queues, definition: {overflow: reject-publish}}}", False),
    ("policies: {p: {pattern: ^orders$, apply_to: exchanges, definition: {alternate-exchange: x}}}", False),
    ("policies: {p: {pattern: ^orders$, apply_to: queues, definition: {max-length: 5}}}", False),
    ("operator_policies: {p: {pattern: orders, apply_to: queues, definition: {overflow: reject-publish}}}", True),
])
def test_a_matching_policy_that_may_set_the_keys_leaves_it_to_the_broker(policy, quiet):
    got = _codes("x-dead-letter-strategy: at-least-once, x-dead-letter-exchange: dlx", f"    {policy}\n")
    assert (got == []) is quiet, got


@pytest.mark.parametrize("qtype, warned", [("quorum", True), ("classic", False)])
def test_reject_publish_dlx_is_a_warning_on_a_quorum_queue_only(qtype, warned):
    loaded = load_text(f"vhosts:\n  v:\n    queues:\n      q: {{durable: true, arguments: {{x-queue-type: {qtype}, "
                       "x-max-length: 10, x-overflow: reject-publish-dlx}}\n")
    found = [f for f in loaded.findings if f.code == "overflow-not-for-queue-type"]
    assert bool(found) is warned and loaded.ok
    if found:
        assert "as drop-head does" in found[0].message and found[0].hint.startswith("use reject-publish")


@pytest.mark.parametrize("definition, apply_to, warned", [
    ("{dead-letter-strategy: at-least-once, dead-letter-exchange: dlx}", "queues", True),
    ("{dead-letter-strategy: at-least-once, dead-letter-exchange: dlx}", "quorum_queues", True),
    ("{dead-letter-strategy: at-least-once, dead-letter-exchange: dlx, overflow: reject-publish}", "queues", False),
    ("{dead-letter-strategy: at-least-once}", "exchanges", False),
    ("{dead-letter-exchange: dlx}", "queues", False),
])
def test_a_policy_asking_for_at_least_once_without_reject_publish_warns(definition, apply_to, warned):
    loaded = load_text(f"vhosts:\n  v:\n    policies:\n      p: {{pattern: ^q, apply_to: {apply_to}, "
                       f"definition: {definition}}}\n")
    found = [f for f in loaded.findings if f.code == "dead-letter-strategy-ineffective"]
    assert bool(found) is warned, found
    if found:
        assert found[0].message.startswith("policy 'p' sets dead-letter-strategy") and "overflow" in found[0].hint
