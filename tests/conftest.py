"""Shared fixtures.

Broker tests (marker ``broker``; everything under ``tests/integration`` is marked
automatically) need a live RabbitMQ with the management plugin. When it is unreachable
they FAIL, never skip, unless the run asks for offline tests only (``--offline`` or
``TOPOFORM_OFFLINE=1``), which deselects them.

Every broker test works in its own uniquely named vhost, removed afterwards. The suite
talks to the broker as a dedicated administrator ``topoform-test-<random>`` whose
password is random per session, so that tests can assert no output ever contains it.
"""
from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers import EXAMPLES, Management, run_cli, unique_vhost  # noqa: E402

from topoform.broker.settings import BrokerSettings, quote_segment  # noqa: E402

BROKERS_TSV = Path(__file__).resolve().parent.parent / "scripts" / "brokers.tsv"


def brokers_table() -> dict[str, dict[str, int]]:
    """The test brokers of scripts/brokers.tsv: name -> {"amqp": port, "http": port}."""
    table = {}
    for line in BROKERS_TSV.read_text().splitlines():
        cols = line.split()
        if cols and not cols[0].startswith("#"):
            table[cols[0]] = {"amqp": int(cols[2]), "http": int(cols[3]), "node": cols[7]}
    return table


def _chosen_broker() -> str:
    for i, arg in enumerate(sys.argv):
        if arg == "--broker" and i + 1 < len(sys.argv):
            return sys.argv[i + 1]
        if arg.startswith("--broker="):
            return arg.split("=", 1)[1]
    return os.environ.get("TOPOFORM_TEST_BROKER", "3.10")


# Which broker the broker-backed tests run against: --broker NAME or TOPOFORM_TEST_BROKER
# (a row of scripts/brokers.tsv), or explicit TOPOFORM_TEST_ADMIN_URL/_MANAGEMENT_URL.
TEST_BROKER = _chosen_broker()
_ports = brokers_table().get(TEST_BROKER)
if _ports is None:
    raise SystemExit(f"unknown test broker {TEST_BROKER!r}; known: {', '.join(brokers_table())}")
ADMIN_URL = os.environ.get("TOPOFORM_TEST_ADMIN_URL", f"amqp://guest:guest@localhost:{_ports['amqp']}/")
ADMIN_MANAGEMENT_URL = os.environ.get("TOPOFORM_TEST_ADMIN_MANAGEMENT_URL",
                                      f"http://guest:guest@localhost:{_ports['http']}")
# One user per test session, so concurrent sessions never reset each other's password.
TEST_USER = f"topoform-test-{secrets.token_hex(4)}"


def pytest_addoption(parser):
    parser.addoption("--offline", action="store_true", default=False,
                     help="run only the tests that need no broker (deselects marker 'broker')")
    parser.addoption("--broker", default=None,
                     help="test broker from scripts/brokers.tsv (3.10, 4.0, 4.3); env TOPOFORM_TEST_BROKER")


def pytest_report_header(config):
    return f"topoform test broker: {TEST_BROKER} ({ADMIN_MANAGEMENT_URL.split('@')[-1]})"


def _offline(config) -> bool:
    return config.getoption("--offline") or os.environ.get("TOPOFORM_OFFLINE") == "1"


def pytest_collection_modifyitems(config, items):
    integration = Path(__file__).resolve().parent / "integration"
    for item in items:
        if integration in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.broker)
    if _offline(config):
        kept = [i for i in items if "broker" not in i.keywords]
        deselected = [i for i in items if "broker" in i.keywords]
        if deselected:
            config.hook.pytest_deselected(items=deselected)
            items[:] = kept


@pytest.fixture(scope="session")
def admin() -> Management:
    """Management client as the broker's bootstrap administrator (guest on a local test broker)."""
    mgmt = Management(BrokerSettings(url=ADMIN_URL, management_url=ADMIN_MANAGEMENT_URL))
    try:
        mgmt.request("GET", "/api/overview", expect=(200,))
    except Exception as exc:  # noqa: BLE001 - any failure means "no broker"
        pytest.fail(f"RabbitMQ management API unreachable at {mgmt.base} ({type(exc).__name__}); "
                    "start it with scripts/broker.sh, or run offline tests only with --offline", pytrace=False)
    return mgmt


@pytest.fixture(scope="session")
def broker_version(admin) -> tuple[int, int]:
    """(major, minor) of the broker under test, from GET /api/overview."""
    v = admin.get("/api/overview")["rabbitmq_version"]
    major, minor = v.split(".")[:2]
    return int(major), int(minor)


@pytest.fixture(scope="session")
def test_password() -> str:
    # Mixed-case letters, digits, - and _: the leak checks look for every 4-character piece,
    # and pieces of a hex password matched fingerprints and vhost names by chance (~3% a test).
    while True:
        pw = "tf-" + secrets.token_urlsafe(18)
        if not pw[3:].startswith("-"):  # a leading "-" would read as a flag in some argv tests
            return pw


@pytest.fixture(scope="session")
def broker(admin, test_password) -> BrokerSettings:
    """Settings for the dedicated test administrator (random password, created per session)."""
    admin.put(f"/api/users/{quote_segment(TEST_USER)}", {"password": test_password, "tags": "administrator"})
    host = admin.settings.amqp_host
    port = admin.settings.amqp_port
    mgmt = admin.settings.http_base_clean.replace("://", f"://{TEST_USER}:{test_password}@", 1)
    settings = BrokerSettings(url=f"amqp://{TEST_USER}:{test_password}@{host}:{port}/", management_url=mgmt)
    yield settings
    admin.delete(f"/api/users/{quote_segment(TEST_USER)}")


@pytest.fixture
def mgmt(broker) -> Management:
    return Management(broker)


@pytest.fixture
def vhost(admin, broker, request):
    """A fresh, uniquely named vhost with full permissions for the test user; deleted afterwards."""
    name = unique_vhost()
    admin.create_vhost(name, user=TEST_USER)
    yield name
    admin.delete_vhost(name)


@pytest.fixture
def broker_env(broker) -> dict:
    """Environment variables that point the CLI at the test broker."""
    return {"TOPOFORM_URL": broker.url, "TOPOFORM_MANAGEMENT_URL": broker.management_url, "CI": "true"}


@pytest.fixture
def cli(test_password):
    """``cli(argv, **kw)``: run topoform in-process; asserts the test password never appears."""

    def _run(argv, **kw):
        return run_cli(argv, secrets=(test_password,), **kw)

    return _run


@pytest.fixture
def amqp(broker, vhost):
    """A pika BlockingConnection to the test vhost (closed afterwards)."""
    import pika

    params = pika.ConnectionParameters(host=broker.amqp_host, port=broker.amqp_port, virtual_host=vhost,
                                       credentials=pika.PlainCredentials(broker.username, broker.password),
                                       heartbeat=0)
    conn = pika.BlockingConnection(params)
    yield conn
    if conn.is_open:
        conn.close()


@pytest.fixture
def examples() -> Path:
    return EXAMPLES
