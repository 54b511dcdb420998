"""The broken-file corpus: one file per mistake users make, each with its exact report.

Every file in ``tests/corpus/`` (helpers in ``_parts/`` are not cases) must make
``topoform validate -f FILE`` exit 1 and print exactly ``FILE:LINE:COL: message`` among
its findings. A new corpus file without a row here fails the suite, so the table and
the directory cannot drift apart.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from helpers import run_cli

CORPUS = Path(__file__).resolve().parent.parent / "corpus"

# file -> "LINE:COL: message" (the path prefix is added by the test; {dir} is the corpus directory)
EXPECTED = dict([
    ("01-bad-indentation.yaml", "6:8: invalid YAML: did not find expected key (while parsing a block mapping); check the indentation"),
    ("02-tab-indentation.yaml", "4:1: invalid YAML: a tab character; YAML indentation must use spaces"),
    ("03-unclosed-quote.yaml", "5:1: invalid YAML: found unexpected end of stream (while scanning a quoted scalar)"),
    ("04-duplicate-queue.yaml", "6:7: duplicate key 'orders' (first defined at line 4); YAML would silently keep only the last one"),
    ("05-duplicate-field.yaml", "6:9: duplicate key 'durable' (first defined at line 5); YAML would silently keep only the last one"),
    ("06-boolean-as-string.yaml", "5:18: 'durable' in queue 'orders' must be a boolean (true or false), got string \"yes\""),
    ("07-misspelled-queue-key.yaml", "5:9: unknown key 'durabel' in queue 'orders' (did you mean 'durable'? expected one of: arguments, auto_delete, bindings, durable, exclusive)"),
    ("08-misspelled-top-level-key.yaml", "1:1: unknown key 'vhost' in the top level (did you mean 'vhosts'? expected one of: global_parameters, include, owner, rabbitmq_version, tests, users, variables, version, vhosts)"),
    ("09-unknown-exchange-key.yaml", "6:9: unknown key 'persistent' in exchange 'events' (expected one of: arguments, auto_delete, durable, internal, type)"),
    ("10-unknown-exchange-type.yaml", "5:15: 'type' of exchange 'events' must be direct, fanout, topic, headers or a plugin type x-*; got string \"fanuot\""),
    ("11-queues-as-list.yaml", "4:7: 'queues' in vhost '/' must be a mapping, got a list"),
    ("12-binding-missing-source.yaml", "6:9: binding #1 in vhost '/' is missing required key 'source'"),
    ("13-binding-queue-instead-of-destination.yaml", "8:9: binding #1 in vhost '/' is missing required key 'destination'"),
    ("14-sugar-binding-missing-exchange.yaml", "6:13: binding #1 of queue 'orders' is missing required key 'exchange'"),
    ("15-dangling-binding-source.yaml", "6:24: binding source exchange 'events' is not declared in vhost '/'"),
    ("16-dangling-binding-destination.yaml", "6:39: binding destination queue 'orders' is not declared in vhost '/'"),
    ("17-e2e-without-destination-type.yaml", "7:39: binding destination queue 'billing' is not declared in vhost '/' (set destination_type: exchange for an exchange-to-exchange binding)"),
    ("18-binding-from-default-exchange.yaml", "6:24: the default exchange (\"\") cannot be bound to or from; every queue is already reachable through it by its name"),
    ("19-quorum-not-durable.yaml", "4:7: quorum queue 'orders' must be durable; the broker refuses it (406 invalid property)"),
    ("20-quorum-exclusive.yaml", "6:20: quorum queue 'orders' cannot be exclusive; the broker refuses it (406 invalid property)"),
    ("21-quorum-auto-delete.yaml", "6:22: quorum queue 'orders' cannot be auto-delete; the broker refuses it (406 invalid property)"),
    ("22-queue-name-300-bytes.yaml", "4:7: queue name 'qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq...' is 300 bytes; the broker allows at most 255 (AMQP short string)"),
    ("23-exchange-name-300-bytes.yaml", "4:7: exchange name 'ééééééééééééééééééééééééééééééééééééé...' is 300 bytes; the broker allows at most 255 (AMQP short string)"),
    ("24-routing-key-300-bytes.yaml", "9:26: routing_key of binding #1 of queue 'orders' is 300 bytes; the broker allows at most 255 (AMQP short string)"),
    ("25-max-priority-256.yaml", "7:27: 'x-max-priority' in arguments of queue 'jobs' must be at most 255, got integer 256"),
    ("26-max-priority-on-quorum.yaml", "8:11: quorum queue 'jobs' cannot have argument 'x-max-priority'; the broker refuses it at creation (406 invalid arg)"),
    ("27-unknown-queue-type.yaml", "7:25: 'x-queue-type' in arguments of queue 'orders' must be one of: classic, quorum, stream; got string \"quorom\""),
    ("28-negative-ttl.yaml", "6:26: 'x-message-ttl' in arguments of queue 'orders' must be at least 0, got integer -1000"),
    ("29-negative-max-length.yaml", "6:25: 'x-max-length' in arguments of queue 'orders' must be at least 0, got integer -5"),
    ("30-ttl-as-string.yaml", "6:26: 'x-message-ttl' in arguments of queue 'orders' must be an integer, got string \"60000\""),
    ("31-x-match-uppercase.yaml", "9:34: 'x-match' in arguments of binding #1 of queue 'pdf' must be one of: all, any, all-with-x, any-with-x; got string \"ALL\""),
    ("32-x-match-integer.yaml", "9:34: 'x-match' in arguments of binding #1 of queue 'pdf' must be one of: all, any, all-with-x, any-with-x; got integer 1"),
    ("33-reserved-amq-queue-name.yaml", "4:7: queue name 'amq.orders' uses the reserved prefix 'amq.'; the broker refuses to create it (403 ACCESS_REFUSED)"),
    ("34-line-break-in-name.yaml", "4:7: queue name 'orders\\r\\nnew' contains a line break; the broker silently strips it and the declare never completes"),
    ("35-unknown-format-version.yaml", "1:10: 'version' in the top level must be 1, got integer 2"),
    ("36-invalid-destination-type.yaml", "8:65: 'destination_type' in binding #1 in vhost '/' must be one of: queue, exchange; got string \"topic\""),
    ("37-policy-missing-definition.yaml", "5:9: policy 'ttl' is missing required key 'definition'"),
    ("38-policy-x-argument-key.yaml", "7:11: unknown key 'x-message-ttl' in definition of policy 'ttl' (did you mean 'message-ttl'? expected one of: alternate-exchange, dead-letter-exchange, dead-letter-routing-key, dead-letter-strategy, delivery-limit, expires, federation-upstream, federation-upstream-set, ha-mode, ha-params, ha-promote-on-failure, ha-promote-on-shutdown, ha-sync-batch-size, ha-sync-mode, initial-cluster-size, max-age, max-in-memory-bytes, max-in-memory-length, max-length, max-length-bytes, message-ttl, overflow, queue-leader-locator, queue-master-locator, queue-mode, queue-version, stream-max-segment-size-bytes)"),
    ("39-policy-apply-to-singular.yaml", "6:19: 'apply_to' in policy 'ttl' must be one of: all, queues, exchanges, classic_queues, quorum_queues, streams; got string \"queue\""),
    ("40-test-expects-undeclared-queue.yaml", "9:33: test #1 expects queue 'order', which is not declared in vhost '/'"),
    ("41-test-unknown-exchange.yaml", "6:16: test #1 publishes to exchange 'events', which is not declared in vhost '/'"),
    ("42-test-missing-expect.yaml", "6:5: test #1 is missing required key 'expect'"),
    ("43-delivery-limit-on-classic.yaml", "7:11: classic queue 'orders' cannot have argument 'x-delivery-limit'; the broker refuses it at creation (406 invalid arg)"),
    ("44-include-not-found.yaml", "1:11: included file not found: shared/common.yaml (looked for {dir}/shared/common.yaml)"),
    ("45-arguments-as-list.yaml", "6:11: 'arguments' in queue 'orders' must be a mapping, got a list"),
    ("46-empty-exchange-name.yaml", "4:7: exchange name must not be empty: the default exchange cannot be declared"),
    ("47-zero-expires.yaml", "6:22: 'x-expires' in arguments of queue 'orders' must be at least 1, got integer 0"),
    ("48-unquoted-date-value.yaml", "6:22: value 2024-01-31 is a YAML timestamp, which topoform cannot send to the broker; quote it to make it a string"),
    ("49-boolean-as-number.yaml", "6:18: 'durable' in exchange 'events' must be a boolean (true or false), got integer 1"),
    # 'scratch' (durable, auto-delete) is classic: the vhost default never applies to auto-delete declares
    ("50-vhost-default-quorum-max-priority.yaml", "11:11: quorum queue 'jobs' (the default queue type of vhost '/') cannot have argument 'x-max-priority'; the broker refuses it at creation (406 invalid arg)"),
    ("51-sugar-bindings-as-mapping.yaml", "8:11: 'bindings' in queue 'orders' must be a list, got a mapping"),
    ("52-tests-as-mapping.yaml", "6:3: tests must be a list, got a mapping"),
    ("53-list-as-key.yaml", "4:7: mapping keys must be plain names, not lists or mappings"),
    ("54-python-tag.yaml", "6:18: unsupported YAML tag 'tag:yaml.org,2002:python/name:os.system'; topology files hold plain YAML values only"),
    ("55-policy-priority-string.yaml", "6:19: 'priority' in policy 'ttl' must be an integer, got string \"high\""),
    ("56-conflicting-declaration.yaml", "5:7: queue 'orders' in vhost '/' is declared differently at {dir}/_parts/orders-durable.yaml:4:7 (durable differs)"),
    ("57-ttl-as-float.yaml", "6:26: 'x-message-ttl' in arguments of queue 'orders' must be an integer, got float 1.5"),
    ("58-stream-max-age-bad.yaml", "8:22: 'x-max-age' in arguments of queue 'events' must be a number and a unit (Y, M, D, h, m or s), e.g. 7D; got string \"7 days\""),
    ("59-dangling-sugar-exchange-typo.yaml", "8:24: binding source exchange 'orders_events' is not declared in vhost '/'"),
    ("60-empty-policy-definition.yaml", "6:21: definition of policy 'ttl' must not be empty"),
    # version rules (SPEC section 6): the file's rabbitmq_version, else 4.3
    ('61-ha-policy-on-4x.yaml', "9:11: policy 'mirror' key 'ha-mode' is refused by RabbitMQ 4.0 and later (target 4.0): classic mirrored queues are gone: remove the ha-* keys and use quorum queues (apply --migrate)"),
    ('62-queue-version-1-on-4-3.yaml', "7:38: queue 'orders' has x-queue-version: 1, which RabbitMQ 4.3 and later refuse (406 unsupported queue version; CQv1 was removed; target 4.3): remove it or use 2"),
    ('63-three-hashes-on-4-3.yaml', "10:45: topic binding key '#.audit.#.#' has more than two '#' words, which RabbitMQ 4.3 and later refuse (406 at most 2 are allowed; target 4.3): rewrite it with at most two '#'"),
    ('64-apply-to-quorum-queues-on-3-10.yaml', "7:19: policy 'limit' has apply_to quorum_queues, which RabbitMQ 3.10 refuses (400; accepted from 3.12): use apply_to queues with a pattern that matches only those queues"),
    ('65-local-random-on-3-10.yaml', "6:15: exchange 'spread' has type 'x-local-random', which exists from RabbitMQ 4.0; RabbitMQ 3.10 refuses it (unknown exchange type): use another type or target 4.0+"),
    ('66-queue-master-locator-on-4-3.yaml', "8:11: queue 'orders' argument 'x-queue-master-locator' is refused by RabbitMQ 4.3 and later (target 4.3; the declare closes the connection): use x-queue-leader-locator (policy key queue-leader-locator) instead"),
    ('67-queue-master-locator-policy-on-4-3.yaml', "8:11: policy 'placement' key 'queue-master-locator' is refused by RabbitMQ 4.3 and later (target 4.3): use queue-leader-locator instead"),
    # the target version itself
    ('68-versions-disagree.yaml', '2:19: rabbitmq_version "4.3" differs from "4.0" in {dir}/_parts/targets-4-0.yaml:1:19; files that set it must agree'),
    ('69-unsupported-rabbitmq-version.yaml', '1:19: rabbitmq_version: unsupported RabbitMQ version 3.8; supported: 3.10 to 4.3 (3.10, 3.11, 3.12, 3.13, 4.0, 4.1, 4.2, 4.3)'),
    ('70-unquoted-rabbitmq-version.yaml', '1:19: rabbitmq_version must be a string, got the number 3.1: quote it, rabbitmq_version: "3.10" (unquoted, YAML reads 3.10 as the number 3.1)'),
    # YAML and indentation mistakes explained (issue 11 item 9)
    ('71-unquoted-star-routing-key.yaml', '10:26: invalid YAML: a value starting with \'*\' is read as a YAML alias (a reference to an &anchor): quote it, routing_key: "*.created"'),
    ('72-unquoted-hash-routing-key.yaml', '10:26: \'routing_key\' in binding #1 of queue \'orders\' must be a string, got nothing (null): \'#.created\' after the key is a YAML comment (a \'#\' after a space starts one); if it is the value, quote it: routing_key: "#.created"'),
    ('73-unquoted-hash-in-flow-mapping.yaml', '9:45: invalid YAML: \'#.created\' starts a YAML comment (a \'#\' after a space), so the rest of the line is lost: quote it, routing_key: "#.created"'),
    ('74-bindings-indented-as-a-queue.yaml', "8:7: 'bindings' is a field of a queue, but it is indented as a queue name under 'queues': indent 'bindings:' two more spaces, under queue 'orders' (as written: queue 'bindings' must be a mapping, got a list)"),
    ('75-queue-bindings-under-the-vhost.yaml', "8:5: binding #1 in vhost '/' has 'exchange:', the form of a queue's own bindings: if it belongs to queue 'orders' (the last queue above), indent 'bindings:' under that queue; a vhost's bindings need source and destination"),
    ('76-leader-locator-on-classic-3-10.yaml', "7:21: classic queue 'orders' cannot have argument 'x-queue-leader-locator' before RabbitMQ 4.0 (target 3.10); the broker refuses it at creation (406 invalid arg)"),
])


def test_every_corpus_file_has_an_expectation_and_there_are_at_least_40():
    files = sorted(p.name for p in CORPUS.glob("*.yaml"))
    assert files == sorted(EXPECTED)
    assert len(files) >= 40


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_broken_file_is_reported_at_its_position(name):
    path = CORPUS / name
    result = run_cli(["validate", "-f", str(path)])
    assert result.code == 1, result
    lines = result.err.splitlines()
    expected = f"{path}:{EXPECTED[name]}".replace("{dir}", str(CORPUS))
    assert expected in lines, result
    assert "Traceback" not in result.err
    assert result.out == ""
    # every finding line starts with PATH:LINE:COL; the last line is the summary
    assert lines[-1].startswith("invalid: ")
    for line in lines[:-1]:
        file, line_no, col, _ = line.split(":", 3)
        assert file.startswith(str(CORPUS)) and line_no.isdigit() and col.isdigit(), line
