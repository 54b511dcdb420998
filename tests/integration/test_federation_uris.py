"""What a federation upstream inside the broker does with a host-less URI, on each of 3.10.8, 4.0.5
and 4.3.6: the evidence behind ``validate``'s federation warnings
(``topoform/config/load.py: check_federation_uris``).

* ``amqp://`` (no host, no path) is the upstream's *own* vhost, not ``/`` as for a shovel: an
  exchange federated from it is federated from itself, and a queue bound to it gets each message
  twice;
* ``amqp:///`` names the vhost ``''``: 4.3 refuses the upstream (400), 3.10 and 4.0 take it and
  the link fails with ``not_allowed``.
"""
from __future__ import annotations

import time

import pika
import yaml

from conftest import ADMIN_MANAGEMENT_URL, ADMIN_URL
from topoform.broker.settings import quote_segment


def _wait(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    return None


def _links(admin, vhost) -> list[dict]:
    return admin.request("GET", f"/api/federation-links/{quote_segment(vhost)}").json()


def test_a_federation_uri_without_a_vhost_federates_the_vhost_from_itself(admin, vhost, cli, tmp_path):
    files = {"vhosts": {vhost: {
        "exchanges": {"events": {"type": "topic"}},
        "queues": {"audit": {"durable": True, "bindings": [{"exchange": "events", "routing_key": "#"}]}},
        "federation_upstreams": {"self": {"uri": "amqp://"}},
        "policies": {"fed": {"pattern": "^events$", "apply_to": "exchanges",
                             "definition": {"federation-upstream": "self"}}}}}}
    (tmp_path / "topoform.yaml").write_text(yaml.safe_dump(files), encoding="utf-8")
    env = {"TOPOFORM_URL": ADMIN_URL, "TOPOFORM_MANAGEMENT_URL": ADMIN_MANAGEMENT_URL, "CI": "true"}

    checked = cli(["validate", "--json"], environ=env, cwd=tmp_path)
    assert checked.code == 0, checked
    found = {(f["code"], f["severity"]) for f in checked.json["findings"]}
    # plugin-policy-key: the policy's federation key needs the plugin (apply checks it is enabled)
    assert found == {("federation-self-upstream", "warning"), ("plugin-policy-key", "warning")}, checked.json

    applied = cli(["apply", "--auto-approve"], environ=env, cwd=tmp_path)
    assert applied.code == 0, applied
    links = _wait(lambda: [x for x in _links(admin, vhost) if x.get("status") == "running"])
    assert links, _links(admin, vhost)
    # the link's queue is in the upstream's own vhost: it connected to this vhost, not '/'
    names = [q["name"] for q in admin.request("GET", f"/api/queues/{quote_segment(vhost)}").json()]
    assert any(n.startswith("federation: events") for n in names), names
    time.sleep(1.0)  # the link binds its queue to the exchange after it reports running
    conn = pika.BlockingConnection(pika.URLParameters(ADMIN_URL.rstrip("/") + "/" + quote_segment(vhost)))
    try:
        ch = conn.channel()
        ch.basic_publish("events", "order.created", b"once")
        counted = _wait(lambda: ch.queue_declare("audit", passive=True).method.message_count >= 2, timeout=10)
        count = ch.queue_declare("audit", passive=True).method.message_count
    finally:
        conn.close()
    assert counted and count == 2, count  # published once, delivered twice


def test_a_federation_uri_naming_the_empty_vhost_does_not_work(admin, vhost, broker_version, cli, tmp_path):
    files = {"vhosts": {vhost: {"federation_upstreams": {"nowhere": {"uri": "amqp:///"}}}}}
    (tmp_path / "topoform.yaml").write_text(yaml.safe_dump(files), encoding="utf-8")
    checked = cli(["validate", "--json"], cwd=tmp_path)
    assert checked.code == 1, checked
    assert [(f["code"], f["severity"]) for f in checked.json["findings"]] == [
        ("federation-empty-vhost", "error")], checked.json

    path = f"/api/parameters/federation-upstream/{quote_segment(vhost)}/nowhere"
    put = admin.request("PUT", path, {"value": {"uri": "amqp:///"}}, expect=(201, 204, 400))
    if broker_version >= (4, 3):
        assert put.status_code == 400, put.text
        return
    assert put.status_code in (201, 204), put.text
    admin.request("PUT", f"/api/exchanges/{quote_segment(vhost)}/events", {"type": "topic"}, expect=(201, 204))
    admin.request("PUT", f"/api/policies/{quote_segment(vhost)}/fed", {
        "pattern": "^events$", "apply-to": "exchanges", "definition": {"federation-upstream": "nowhere"}}, expect=(201, 204))
    failed = _wait(lambda: [x for x in _links(admin, vhost) if x.get("status") == "error"])
    assert failed and failed[0].get("error") == "not_allowed", _links(admin, vhost)
