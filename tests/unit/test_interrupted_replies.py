"""Ctrl-C or SIGTERM in the middle of a pipelined phase: the requests in flight are not abandoned.
Their replies are awaited (briefly), so every change the broker made is reported done, and the
connections of a Pool stop sending before the interrupt goes on (the lock is released after).
SIGTERM is turned into the same interrupt (exit 130); tests/integration/test_sigterm_broker.py
shows all of it on a broker."""
from __future__ import annotations

import threading
import time

import pytest

from topoform.broker import amqp
from topoform.broker.settings import BrokerSettings

SETTINGS = BrokerSettings(url="amqp://bob:s3cret-pw@localhost:5672/")


def ops(n):
    return [amqp.op_declare_queue(f"q{i}", durable=True, auto_delete=False, arguments=None) for i in range(n)]


class FakeChannel:
    def __init__(self, connection, number):
        self.connection, self.channel_number = connection, number

    def add_on_close_callback(self, callback):
        pass

    def queue_declare(self, callback=None, **kwargs):
        self.connection.sent.append(kwargs["queue"])
        if callback is not None:
            self.connection.replies.append(callback)


class FakeConnection:
    """Answers every request on the next I/O round, except that the round right after the first
    requests went out raises KeyboardInterrupt (Ctrl-C while waiting for their replies)."""

    def __init__(self):
        self.is_open, self.sent, self.replies, self.interrupted, self.channels = True, [], [], False, 0
        self._impl = self

    def channel(self, on_open_callback):
        self.channels += 1
        ch = FakeChannel(self, self.channels)
        on_open_callback(ch)
        return ch

    def process_data_events(self, time_limit=0):
        if self.replies and not self.interrupted:
            self.interrupted = True
            raise KeyboardInterrupt()
        replies, self.replies = self.replies, []
        for reply in replies:
            reply(None)

    def close(self):
        self.is_open = False


def test_an_interrupt_while_replies_are_in_flight_still_counts_them_done():
    connection = FakeConnection()
    session = amqp.Session(SETTINGS, "v", channels=3, window=1, connection=connection)
    done = []
    with pytest.raises(KeyboardInterrupt):
        session.run(ops(10), on_done=done.append)
    # three requests were in flight when the interrupt came; the broker made them: done, not "not done"
    assert connection.sent == ["q0", "q1", "q2"]
    assert [op.kwargs["queue"] for op in done] == ["q0", "q1", "q2"]
    result = session.last_result
    assert [op.kwargs["queue"] for op in result.done] == ["q0", "q1", "q2"]
    assert sorted(op.kwargs["queue"] for op in result.not_attempted) == sorted(f"q{i}" for i in range(3, 10))
    assert not connection.is_open  # nothing more is sent after an interrupt


class SilentConnection(FakeConnection):
    """The interrupt comes, and then the broker never answers."""

    def process_data_events(self, time_limit=0):
        if self.replies and not self.interrupted:
            self.interrupted = True
            raise KeyboardInterrupt()
        time.sleep(time_limit)


def test_replies_that_never_come_leave_their_changes_not_done_after_a_short_wait(monkeypatch):
    connection = SilentConnection()
    monkeypatch.setattr(amqp.Session, "DRAIN_SECONDS", 0.2)
    session = amqp.Session(SETTINGS, "v", channels=2, window=1, connection=connection)
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        session.run(ops(4), on_done=lambda op: None)
    assert time.monotonic() - started < 2
    assert session.last_result.done == [] and len(session.last_result.not_attempted) == 4


def test_an_interrupt_stops_every_connection_of_a_pool_before_it_goes_on(monkeypatch):
    pool = amqp.Pool(SETTINGS, "v", connections=3, channels=4)
    in_flight_done = []

    def behaviour(session, part, on_done):  # sends until told to stop, then its reply in flight arrives
        session.last_result = amqp.BatchResult()
        for op in part:
            if session.halt is not None and session.halt.is_set():
                session.last_result.not_attempted.append(op)
                continue
            time.sleep(0.001)
            session.last_result.done.append(op)
            on_done(op)
        in_flight_done.append(threading.current_thread().name)
        return session.last_result

    for session in pool.sessions:
        monkeypatch.setattr(session, "run", lambda o, on_done=None, tick=None, s=session: behaviour(s, list(o), on_done))
        monkeypatch.setattr(session, "open", lambda s=session: s)
    ticks = []

    def tick():
        ticks.append(1)
        if len(ticks) == 3:
            raise KeyboardInterrupt()

    done = []
    before = set(threading.enumerate())
    with pytest.raises(KeyboardInterrupt):
        pool.run(ops(3 * amqp.Pool.SPLIT_MIN), on_done=done.append, tick=tick)
    # every connection had stopped sending (and reported what it finished) before the interrupt went on
    assert len(in_flight_done) == 3
    assert not [t for t in set(threading.enumerate()) - before if t.name.startswith("topoform-amqp")]
    assert 0 < len(done) < 3 * amqp.Pool.SPLIT_MIN


def _wchan(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/wchan") as fh:
            return fh.read()
    except OSError:
        return ""


def test_sigterm_stops_the_command_as_ctrl_c_does_exit_130_one_line(tmp_path):
    import signal
    import subprocess
    import sys

    from helpers import ROOT

    # `-f -` waits for standard input, which never ends here: the command is busy when SIGTERM comes
    proc = subprocess.Popen([sys.executable, "-m", "topoform", "validate", "-f", "-"], cwd=str(ROOT),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20  # until it blocks reading the pipe: past start-up, its handler installed
        while time.monotonic() < deadline and "pipe_read" not in _wchan(proc.pid):
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, (out, err)  # not 143: handled, as Ctrl-C is
    assert err == "topoform: terminated (SIGTERM)\n" and out == ""
