"""validate per version, checked against the real broker: what ``validate --rabbitmq-version
<the broker's version>`` calls an error, the broker refuses, and what it lets pass, the
broker accepts (issue 10 item 4).

Each case is a file fragment and the same object created over the management API in the
test's own vhost. Runs on whichever broker ``TOPOFORM_TEST_BROKER`` chooses; the version
is read from the broker, so each version's answer is asserted.
"""
from __future__ import annotations

import textwrap
import time

import pika
import pytest

from topoform.broker.settings import quote_segment

# name -> (vhost body in the file, HTTP requests [(method, path under /api with {v}, body)])
CASES = {
    "ha-policy": ("policies: {p: {pattern: ^nothing$, apply_to: queues, definition: {ha-mode: all}}}",
                  [("PUT", "/policies/{v}/p", {"pattern": "^nothing$", "apply-to": "queues",
                                               "definition": {"ha-mode": "all"}})]),
    "apply-to-quorum-queues": ("policies: {p: {pattern: ^nothing$, apply_to: quorum_queues, "
                               "definition: {delivery-limit: 5}}}",
                               [("PUT", "/policies/{v}/p", {"pattern": "^nothing$", "apply-to": "quorum_queues",
                                                            "definition": {"delivery-limit": 5}})]),
    "apply-to-streams": ("policies: {p: {pattern: ^nothing$, apply_to: streams, definition: {max-age: 1D}}}",
                         [("PUT", "/policies/{v}/p", {"pattern": "^nothing$", "apply-to": "streams",
                                                      "definition": {"max-age": "1D"}})]),
    "master-locator-policy": ("policies: {p: {pattern: ^nothing$, definition: {queue-master-locator: min-masters}}}",
                              [("PUT", "/policies/{v}/p", {"pattern": "^nothing$", "apply-to": "all",
                                                           "definition": {"queue-master-locator": "min-masters"}})]),
    "queue-version-1": ("queues: {q: {durable: true, arguments: {x-queue-version: 1}}}",
                        [("PUT", "/queues/{v}/q", {"durable": True, "arguments": {"x-queue-version": 1}})]),
    "master-locator-argument": ("queues: {q: {durable: true, arguments: {x-queue-master-locator: min-masters}}}",
                                [("PUT", "/queues/{v}/q", {"durable": True,
                                                          "arguments": {"x-queue-master-locator": "min-masters"}})]),
    "leader-locator-on-classic": ("queues: {q: {durable: true, arguments: {x-queue-leader-locator: balanced}}}",
                                  [("PUT", "/queues/{v}/q", {"durable": True,
                                                            "arguments": {"x-queue-leader-locator": "balanced"}})]),
    "max-priority-on-quorum": ("queues: {q: {durable: true, arguments: {x-queue-type: quorum, x-max-priority: 5}}}",
                               [("PUT", "/queues/{v}/q", {"durable": True, "arguments": {
                                   "x-queue-type": "quorum", "x-max-priority": 5}})]),
    "three-hashes": ("exchanges: {t: {type: topic, durable: true}}\n"
                     "queues: {q: {durable: true, bindings: [{exchange: t, routing_key: 'a.#.#.#'}]}}",
                     [("PUT", "/exchanges/{v}/t", {"type": "topic", "durable": True}),
                      ("PUT", "/queues/{v}/q", {"durable": True}),
                      ("POST", "/bindings/{v}/e/t/q/q", {"routing_key": "a.#.#.#"})]),
    "local-random-exchange": ("exchanges: {x: {type: x-local-random, durable: true}}",
                              [("PUT", "/exchanges/{v}/x", {"type": "x-local-random", "durable": True})]),
    "queue-version-2": ("queues: {q: {durable: true, arguments: {x-queue-version: 2}}}",
                        [("PUT", "/queues/{v}/q", {"durable": True, "arguments": {"x-queue-version": 2}})]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_validate_errors_are_exactly_what_the_broker_refuses(case, vhost, mgmt, admin, cli, tmp_path):
    full = admin.get("/api/overview")["rabbitmq_version"]
    body, requests = CASES[case]
    f = tmp_path / "t.yaml"
    f.write_text(f"vhosts:\n  {vhost}:\n" + textwrap.indent(body, "    ") + "\n")
    v = cli(["validate", "-f", f, "--rabbitmq-version", full, "--json"])
    assert v.code in (0, 1), v
    errors = [x for x in v.json["findings"] if x["severity"] == "error"]
    assert v.json["rabbitmq_version"] == ".".join(full.split(".")[:2])

    refused = None
    for method, path, payload in requests:
        r = mgmt.request(method, "/api" + path.format(v=quote_segment(vhost)), payload, expect=())
        if r.status_code >= 400:
            refused = f"{method} {path}: {r.status_code} {r.text[:200]}"
            break
    if refused:
        assert errors, f"RabbitMQ {full} refused it ({refused}) but validate found no error"
    else:
        assert not errors, f"RabbitMQ {full} accepted it but validate says: {errors}"


def test_at_least_once_dead_lettering_without_reject_publish_drops_like_at_most_once(vhost, amqp, mgmt):
    """The evidence behind the dead-letter-strategy-ineffective warning: a quorum queue with
    x-dead-letter-strategy: at-least-once keeps a message it cannot dead-letter only with
    x-overflow: reject-publish; with the default drop-head it drops it, as at-most-once does."""
    from topoform.load import load_text

    ch = amqp.channel()
    ch.exchange_declare("dlx", "fanout", durable=True)  # bound to nothing: every dead letter is unroutable
    base = {"x-queue-type": "quorum", "x-dead-letter-exchange": "dlx", "x-message-ttl": 100,
            "x-dead-letter-strategy": "at-least-once"}
    variants = {"with-reject-publish": {**base, "x-overflow": "reject-publish"}, "drop-head": base}
    for name, args in variants.items():
        ch.queue_declare(name, durable=True, arguments=args)
        ch.basic_publish("", name, b"expires")
    deadline, counts = time.monotonic() + 30, {}
    while time.monotonic() < deadline:
        rows = mgmt.request("GET", f"/api/queues/{quote_segment(vhost)}?columns=name,messages,messages_dlx").json()
        counts = {r["name"]: (r.get("messages"), r.get("messages_dlx")) for r in rows}
        if counts.get("with-reject-publish") == (1, 1) and counts.get("drop-head") == (0, 0):
            break
        time.sleep(0.5)
    assert counts == {"with-reject-publish": (1, 1), "drop-head": (0, 0)}, counts
    text = (f"vhosts:\n  {vhost}:\n    exchanges: {{dlx: {{type: fanout, durable: true}}}}\n    queues:\n"
            + "".join(f"      {n}: {{durable: true, arguments: {dict(a)!r}}}\n" for n, a in variants.items()))
    warned = [f.message for f in load_text(text).findings if f.code == "dead-letter-strategy-ineffective"]
    assert len(warned) == 1 and "'drop-head'" in warned[0], warned


def test_reject_publish_dlx_on_a_quorum_queue_works_as_drop_head(vhost, amqp):
    """The evidence behind overflow-not-for-queue-type: on a full quorum queue, reject-publish-dlx
    dead-letters the oldest message and confirms the new one (drop-head); a classic queue refuses
    the new publish (nack) and dead-letters it."""
    from topoform.load import load_text

    ch = amqp.channel()
    ch.confirm_delivery()
    ch.exchange_declare("dlx", "fanout", durable=True)
    ch.queue_declare("dead", durable=True)
    ch.queue_bind("dead", "dlx")
    seen = {}
    for qtype in ("quorum", "classic"):
        ch.queue_declare(qtype, durable=True, arguments={"x-queue-type": qtype, "x-max-length": 1,
                                                          "x-overflow": "reject-publish-dlx",
                                                          "x-dead-letter-exchange": "dlx"})
        answers = []
        for body in (b"first", b"second"):
            try:
                ch.basic_publish("", qtype, body)
                answers.append("ack")
            except pika.exceptions.NackError:
                answers.append("nack")
        dead = None
        for _ in range(50):  # dead-lettering is asynchronous
            method, _props, dead = ch.basic_get("dead", auto_ack=True)
            if method is not None:
                break
            time.sleep(0.1)
        seen[qtype] = (answers, ch.basic_get(qtype, auto_ack=True)[2], dead)
    assert seen == {"quorum": (["ack", "ack"], b"second", b"first"),
                    "classic": (["ack", "nack"], b"first", b"second")}, seen
    text = (f"vhosts:\n  {vhost}:\n    exchanges: {{dlx: {{type: fanout, durable: true}}}}\n    queues:\n"
            + "".join(f"      {t}: {{durable: true, arguments: {{x-queue-type: {t}, x-max-length: 1, "
                      "x-overflow: reject-publish-dlx, x-dead-letter-exchange: dlx}}\n" for t in ("quorum", "classic")))
    warned = [f.message for f in load_text(text).findings if f.code == "overflow-not-for-queue-type"]
    assert len(warned) == 1 and warned[0].startswith("quorum queue 'quorum'"), warned


def test_a_policy_asking_for_at_least_once_without_reject_publish_drops_too(vhost, amqp, mgmt):
    """The policy form of dead-letter-strategy-ineffective: the same keys from a policy."""
    v = quote_segment(vhost)
    base = {"dead-letter-strategy": "at-least-once", "dead-letter-exchange": "dlx", "message-ttl": 100}
    mgmt.request("PUT", f"/api/policies/{v}/drop", {"pattern": "^drop", "apply-to": "queues", "definition": base})
    mgmt.request("PUT", f"/api/policies/{v}/keep", {"pattern": "^keep", "apply-to": "queues",
                                                    "definition": {**base, "overflow": "reject-publish"}})
    ch = amqp.channel()
    ch.exchange_declare("dlx", "fanout", durable=True)
    for name in ("drop", "keep"):
        ch.queue_declare(name, durable=True, arguments={"x-queue-type": "quorum"})
    time.sleep(1)  # the policies reach the new queues
    for name in ("drop", "keep"):
        ch.basic_publish("", name, b"expires")
    deadline, counts = time.monotonic() + 30, {}
    while time.monotonic() < deadline:
        rows = mgmt.request("GET", f"/api/queues/{v}?columns=name,messages,messages_dlx").json()
        counts = {r["name"]: (r.get("messages"), r.get("messages_dlx")) for r in rows}
        if counts == {"keep": (1, 1), "drop": (0, 0)}:
            break
        time.sleep(0.5)
    assert counts == {"keep": (1, 1), "drop": (0, 0)}, counts
