"""BrokerVersionProbe: the broker's version asked once per command (apply and destroy reuse it)."""
from __future__ import annotations

import pytest

from topoform.broker import http as http_mod
from topoform.cli.common import BrokerVersionProbe


class _Client:
    answers: list = []
    asked = 0

    def __init__(self, settings):
        self.settings = settings

    def overview(self):
        type(self).asked += 1
        answer = type(self).answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def close(self):
        pass


@pytest.fixture
def client(monkeypatch):
    _Client.answers, _Client.asked = [], 0
    monkeypatch.setattr(http_mod, "ManagementClient", _Client)
    return _Client


def test_asks_once_and_remembers(client):
    client.answers = [{"rabbitmq_version": "4.3.6"}]
    probe = BrokerVersionProbe(settings=None)
    assert probe.known() is None  # not asked yet
    assert probe() == "4.3.6"
    assert probe() == "4.3.6"
    assert probe.known() == "4.3.6"
    assert client.asked == 1


def test_an_unreachable_broker_is_none_and_asked_again_later(client):
    client.answers = [OSError("refused"), {"rabbitmq_version": "3.10.8"}]
    probe = BrokerVersionProbe(settings=None)
    assert probe() is None
    assert probe.known() is None
    assert probe() == "3.10.8"
    assert probe.known() == "3.10.8"
    assert client.asked == 2


def test_an_empty_version_is_known_as_none(client):
    client.answers = [{"rabbitmq_version": ""}]
    probe = BrokerVersionProbe(settings=None)
    assert probe() is None
    assert probe() is None
    assert client.asked == 1  # it answered: no second request
