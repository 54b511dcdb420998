"""The mover's batch size and prefetch (offline): bounded in bytes, never below a batch left in flight."""
from __future__ import annotations

import pytest

from topoform.apply.migrate_move import BATCH, BATCH_BYTES, PREFETCH, Mover


def _mover(mode="out", source_type="classic", **kw):
    notes = []
    mover = Mover(None, None, "q", "topoform.migrate.q", "topoform.journal.q", mode=mode, username="u",
                  note=notes.append, label="queue q (move_out)", source_type=source_type, **kw)
    return mover, notes


def test_the_window_follows_the_message_size():
    assert Mover.window_for(100) == BATCH
    assert Mover.window_for(256 * 1024) == 64
    assert Mover.window_for(BATCH_BYTES * 4) == 1


@pytest.mark.parametrize("source_type, prefetch", [("classic", PREFETCH), ("quorum", BATCH)])
def test_small_messages_keep_the_default_window(source_type, prefetch):
    mover, notes = _mover(source_type=source_type, message_size=200)
    mover._size_batches(None)  # noqa: SLF001
    assert (mover.batch_size, mover.prefetch, mover.sampling, notes) == (BATCH, prefetch, False, [])


@pytest.mark.parametrize("source_type, prefetch", [("classic", 128), ("quorum", 64)])
def test_large_messages_get_a_window_in_bytes(source_type, prefetch):
    mover, notes = _mover(source_type=source_type, message_size=256 * 1024)
    mover._size_batches(None)  # noqa: SLF001
    # a quorum source holds exactly one batch: what a kill returns is the journaled batch
    assert (mover.batch_size, mover.prefetch) == (64, prefetch)
    assert notes == ["queue q (move_out): 64 message(s) per batch (large messages)"]


def test_an_unknown_size_is_measured_by_a_first_small_batch_or_taken_from_the_journal():
    mover, notes = _mover(source_type="quorum")
    mover._size_batches(None)  # noqa: SLF001
    assert (mover.sampling, notes) == (True, [])  # _sample measures the head of the source first
    mover, _ = _mover()
    mover._size_batches({"phase": "back", "n": 10, "window": 40})  # noqa: SLF001 - another direction's entry
    assert (mover.batch_size, mover.sampling) == (40, False)


def test_a_resumed_run_never_takes_fewer_than_the_batch_left_in_flight():
    # the killed run's batch of 1,000 (small messages then) must be seen whole at the head of the source
    mover, _ = _mover(source_type="quorum", message_size=1024 * 1024)
    mover._size_batches({"phase": "out", "n": 1000, "window": 1000})  # noqa: SLF001
    assert (mover.batch_size, mover.prefetch) == (1000, 1000)
    mover, _ = _mover(mode="rest", message_size=1024 * 1024)
    mover._size_batches({"phase": "back", "n": 50, "window": 50})  # noqa: SLF001
    assert mover.batch_size == 50
    mover._size_batches({"phase": "out", "n": 900})  # noqa: SLF001 - the other direction: not in flight here
    assert mover.batch_size == 16


def test_a_given_batch_is_used_as_given():
    mover, _ = _mover(batch=250, prefetch=500, message_size=BATCH_BYTES)
    mover._size_batches({"phase": "out", "n": 900, "window": 3})  # noqa: SLF001
    assert (mover.batch_size, mover.prefetch) == (250, 500)
