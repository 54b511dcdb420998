"""Apply lock, offline: retry until the timeout, name the holder, take vhosts in sorted order."""
from __future__ import annotations

import pytest
from pika import exceptions as pex

from topoform.apply import lock as lockmod
from topoform.apply.lock import BrokerLock
from topoform.broker.settings import BrokerSettings
from topoform.errors import LockError


class FakeChannel:
    def __init__(self, conn):
        self.conn = conn

    def queue_declare(self, name, **kw):
        self.conn.declares.append((name, kw))
        if self.conn.busy_for > 0:
            self.conn.busy_for -= 1
            raise pex.ChannelClosedByBroker(405, "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue")

    def queue_delete(self, name, **kw):
        self.conn.deletes.append(name)


class FakeConnection:
    def __init__(self, vhost, busy_for):
        self.vhost = vhost
        self.busy_for = busy_for
        self.declares = []
        self.deletes = []
        self.is_open = True

    def channel(self):
        self.opened = getattr(self, "opened", 0) + 1
        return FakeChannel(self)

    def close(self):
        self.is_open = False

    def process_data_events(self, t=0):
        pass


@pytest.fixture
def fake(monkeypatch):
    made = []
    busy = {}

    def connect(settings, vhost, **kw):
        assert kw["heartbeat"] == 0 and kw["keepalive"]
        conn = FakeConnection(vhost, busy.get(vhost, 0))
        made.append(conn)
        return conn

    monkeypatch.setattr(lockmod.amqp, "connect", connect)
    return made, busy


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t

    def sleep(self, s):
        self.t += s


def test_locks_are_exclusive_queues_taken_in_sorted_order(fake):
    made, _ = fake
    lock = BrokerLock(BrokerSettings(), holder="me")
    lock.acquire(["b", "a", "b"])
    assert [c.vhost for c in made] == ["a", "b"]
    name, kw = made[0].declares[0]
    assert name == "topoform.lock" and kw["exclusive"] is True and kw["arguments"] == {"x-topoform-holder": "me"}
    lock.release()
    assert not any(c.is_open for c in made)
    # the lock queue is deleted before its connection closes (4.x drops it only later), on the
    # lock's own channel: one more would be refused under a user's max-channels
    assert all(c.deletes == ["topoform.lock"] for c in made)
    assert [c.opened for c in made] == [1, 1]


def test_waits_for_the_holder_then_takes_the_lock(fake):
    made, busy = fake
    busy["v"] = 3
    clock = Clock()
    waited = []
    lock = BrokerLock(BrokerSettings(), timeout=10, poll=0.5, clock=clock, sleep=clock.sleep,
                      lookup_holder=lambda v: "topoform apply pid=9", on_wait=lambda v, who: waited.append(who))
    lock.acquire(["v"])
    assert lock.vhosts == ["v"] and clock.t == 1.5 and waited == ["topoform apply pid=9"]


def test_gives_up_after_the_timeout_naming_the_holder(fake):
    made, busy = fake
    busy["v"] = 10 ** 6
    clock = Clock()
    lock = BrokerLock(BrokerSettings(), timeout=3, poll=0.5, clock=clock, sleep=clock.sleep,
                      lookup_holder=lambda v: "topoform apply by user 'ci' pid=42 host=runner")
    with pytest.raises(LockError) as info:
        lock.acquire(["v"])
    assert "pid=42" in str(info.value) and "vhost 'v'" in str(info.value) and clock.t == pytest.approx(3.0)
    assert not made[0].is_open  # the waiting connection is closed again


def test_check_retakes_a_lock_whose_connection_died(fake):
    made, _ = fake
    lock = BrokerLock(BrokerSettings())
    lock.acquire(["v"])
    made[0].is_open = False
    lock.check()
    assert len(made) == 2 and lock.connections["v"] is made[1]


@pytest.mark.parametrize("holder, kept", [("me pid=1, connection 127.0.0.1:5 -> 127.0.0.1:5681", True),
                                           ("another apply pid=2", False)])
def test_check_keeps_a_lock_stranded_on_a_lost_cluster_node_only_when_it_is_ours(fake, holder, kept):
    # the node holding the lock queue died; its record (still locked) outlives it on the others
    made, busy = fake
    clock = Clock()
    lock = BrokerLock(BrokerSettings(), holder="me pid=1", clock=clock, sleep=clock.sleep, lookup_holder=lambda v: holder)
    lock.acquire(["v"])
    made[0].is_open = False
    busy["v"] = 10 ** 6
    if not kept:
        with pytest.raises(LockError, match="another apply pid=2"):
            lock.check()
        return
    lock.check()
    assert lock.stranded == {"v"} and "v" not in lock.connections
    n = len(made)
    lock.acquire(["v"])  # still ours: not taken again
    lock.check()
    assert len(made) == n


def test_holder_lookup_reads_the_lock_queue_arguments():
    class Client:
        def get(self, path):
            assert path == "/api/queues/a%2Fb/topoform.lock"
            return {"arguments": {"x-topoform-holder": "topoform apply pid=1"},
                    "owner_pid_details": {"name": "127.0.0.1:5555 -> 127.0.0.1:5672"}}

    who = lockmod.holder_from_management(Client())("a/b")
    assert who == "topoform apply pid=1, connection 127.0.0.1:5555 -> 127.0.0.1:5672"
