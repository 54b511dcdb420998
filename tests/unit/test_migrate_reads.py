"""What a migration reads over HTTP (topoform/apply/migrate.py, migrate_io.py), offline."""
from __future__ import annotations

from types import SimpleNamespace

from topoform.apply import migrate_io
from topoform.apply.migrate import QueueMigration


class Response:
    def __init__(self, status, body=None):
        self.status_code = status
        self._body = body

    def json(self):
        return self._body


class Client:
    """Answers each GET from a list of (status, body), recording the path and parameters."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.asked = []

    def request(self, method, path, body=None, expect=(), params=None, accept=None):
        self.asked.append((method, path, dict(params or {})))
        status, data = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        assert status in expect
        return Response(status, data)


ROW = {"name": "orders", "durable": True, "exclusive": False, "auto_delete": False, "type": "quorum",
       "arguments": {"x-queue-type": "quorum"}}


def test_the_queue_is_read_from_its_record_not_its_statistics(monkeypatch):
    """On 4.3.6 the statistics of a just-declared quorum queue crashed the API's worker
    (badarg in rabbit_mgmt_db:adjust_hibernated_memory_use) and the single-queue GET answered
    500 for longer than the retries wait; disable_stats reads the record, with the same fields."""
    monkeypatch.setattr(migrate_io.time, "sleep", lambda s: None)
    client = Client([(500, None), (200, ROW)])
    fake = SimpleNamespace(ctx=SimpleNamespace(client=client), vhost="v 1", types={})
    q = QueueMigration._get(fake, "orders")
    assert q is not None and q.name == "orders" and q.arguments.get("x-queue-type") == "quorum"
    assert fake.types == {"orders": "quorum"}
    assert [a[1] for a in client.asked] == ["/api/queues/v%201/orders"] * 2  # the 500 was retried
    assert all(a[2].get("disable_stats") == "true" for a in client.asked)


def test_a_missing_queue_is_none_and_a_lasting_500_is_a_one_line_error(monkeypatch):
    monkeypatch.setattr(migrate_io.time, "sleep", lambda s: None)
    fake = SimpleNamespace(ctx=SimpleNamespace(client=Client([(404, {"error": "Object Not Found"})])), vhost="v",
                           types={})
    assert QueueMigration._get(fake, "gone") is None and fake.types == {}
    client = Client([(500, None)])
    try:
        migrate_io.http_json(SimpleNamespace(client=client), "/api/queues/v/q", attempts=3)
    except migrate_io.MigrationError as exc:
        assert "kept answering 500" in str(exc) and "\n" not in str(exc)
    else:
        raise AssertionError("a lasting 500 must raise")
    assert len(client.asked) == 3
