"""The mover keeps every message persistent while it sits in the temporary queue and restores
its own delivery mode on the way back (a transient message would die with a restarted node)."""
from __future__ import annotations

import pika
import pytest

from topoform.apply import migrate_move as mv


@pytest.mark.parametrize("mode", [None, 1, 2])
@pytest.mark.parametrize("headers", [None, {}, {"a": 1, "nested": {"x": [1, 2]}}])
def test_stamp_makes_persistent_and_unstamp_restores_mode_and_headers(mode, headers):
    props = pika.BasicProperties(delivery_mode=mode, headers=headers, message_id="m")
    out = mv._stamped(props, "run1.3.7")
    assert out.delivery_mode == 2
    stamp = mv._stamp_of(out)
    assert mv._batch_of(stamp.rstrip(mv.NO_HEADERS)) == "run1.3"
    back = mv._unstamped(out)
    assert back.delivery_mode == mode and back.headers == headers and back.message_id == "m"
    assert props.delivery_mode == mode  # the original is not changed
