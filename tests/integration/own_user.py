"""Fixtures for broker tests that work as a user and in vhosts of their own: the user
``hpl-test-<hex>`` (administrator, the session's random test password) and vhosts
``hpl-<hex>``, all deleted afterwards. Import the fixtures into the test module."""
from __future__ import annotations

import secrets

import pytest
import yaml
from helpers import unique_vhost

from topoform.broker.settings import BrokerSettings
from topoform.broker.settings import quote_segment as q

HPL_USER = f"hpl-test-{secrets.token_hex(4)}"


@pytest.fixture(scope="module")
def broker(admin, test_password):
    """Settings for ``HPL_USER`` (overrides the suite's ``broker``, so ``broker_env`` and ``cli`` use it)."""
    admin.put(f"/api/users/{q(HPL_USER)}", {"password": test_password, "tags": "administrator"})
    host, port = admin.settings.amqp_host, admin.settings.amqp_port
    mgmt = admin.settings.http_base_clean.replace("://", f"://{HPL_USER}:{test_password}@", 1)
    yield BrokerSettings(url=f"amqp://{HPL_USER}:{test_password}@{host}:{port}/", management_url=mgmt)
    admin.delete(f"/api/users/{q(HPL_USER)}")


def new_vhost(admin, name=None) -> str:
    """Create a vhost (``hpl-<hex>`` unless named) that ``HPL_USER`` may use fully."""
    name = name or unique_vhost("hpl")
    admin.create_vhost(name, user=HPL_USER)
    return name


@pytest.fixture
def vhost(admin, broker):
    name = new_vhost(admin)
    yield name
    admin.delete_vhost(name)


def write(tmp_path, data) -> None:
    (tmp_path / "topoform.yaml").write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True),
                                            encoding="utf-8")


def queues(admin, vhost) -> dict:
    return {x["name"]: x for x in admin.get(f"/api/queues/{q(vhost)}")}
