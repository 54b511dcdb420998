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
                     help="run only the tests that need no broker (deselects markers 'broker' and 'cluster')")
    parser.addoption("--broker", default=None,
                     help="test broker from scripts/brokers.tsv (3.10, 4.0, 4.3); env TOPOFORM_TEST_BROKER")


def pytest_report_header(config):
    return f"topoform test broker: {TEST_BROKER} ({ADMIN_MANAGEMENT_URL.split('@')[-1]})"


def _offline(config) -> bool:
    return config.getoption("--offline") or os.environ.get("TOPOFORM_OFFLINE") == "1"


def pytest_collection_modifyitems(config, items):
    integration = Path(__file__).resolve().parent / "integration"
    cluster_dir = integration / "cluster"
    for item in items:
        parents = Path(str(item.fspath)).resolve().parents
        if cluster_dir in parents:  # the 3-node cluster (scripts/cluster.sh), never a single broker
            item.add_marker(pytest.mark.cluster)
        elif integration in parents:
            item.add_marker(pytest.mark.broker)
    if _offline(config):
        def live(i):
            return i.get_closest_marker("broker") is not None or i.get_closest_marker("cluster") is not None
        kept = [i for i in items if not live(i)]
        deselected = [i for i in items if live(i)]
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


# ----------------------------------------------------------------------------- the test cluster
# Tests under tests/integration/cluster (marker ``cluster``; run by scripts/test.sh after the
# per-broker loops, never inside them) talk to the 3-node cluster of scripts/cluster.sh.
CLUSTER_TSV = BROKERS_TSV.parent / "cluster.tsv"
CLUSTER_SH = BROKERS_TSV.parent / "cluster.sh"


def cluster_table() -> list[dict]:
    """The nodes of scripts/cluster.tsv, in order: {"name": "1", "version", "amqp", "http", "node"}."""
    rows = []
    for line in CLUSTER_TSV.read_text().splitlines():
        cols = line.split()
        if cols and not cols[0].startswith("#"):
            rows.append({"name": cols[0], "version": cols[1], "amqp": int(cols[2]), "http": int(cols[3]),
                         "node": cols[7]})
    return rows


class Cluster:
    """The test cluster as the session's test user.

    ``nodes``: one dict per node (``name`` "1".."3", ``node`` rabbitc1@localhost, ``amqp``/``http``
    ports, ``url``/``management_url`` with the test user's credentials). ``kill(n)`` (SIGKILL),
    ``stop_node(n)``, ``start_node(n)`` drive scripts/cluster.sh (n: 1..3); ``up(n)`` asks the
    node's API; ``admin(n)`` is a guest Management client on node n (default: the first that answers).
    """

    def __init__(self, user: str, password: str):
        self.user, self.password = user, password
        self.nodes = []
        for row in cluster_table():
            self.nodes.append(dict(row, url=f"amqp://{user}:{password}@localhost:{row['amqp']}/",
                                   management_url=f"http://{user}:{password}@localhost:{row['http']}"))

    @property
    def urls(self) -> list[str]:
        return [n["url"] for n in self.nodes]

    @property
    def management_urls(self) -> list[str]:
        return [n["management_url"] for n in self.nodes]

    def node(self, n) -> dict:
        return next(x for x in self.nodes if x["name"] == str(n))

    def settings(self, n) -> BrokerSettings:
        x = self.node(n)
        return BrokerSettings(url=x["url"], management_url=x["management_url"])

    def env(self, nodes=None) -> dict:
        """CLI environment naming the given nodes (default: all, in table order) as URL lists."""
        chosen = [self.node(n) for n in nodes] if nodes else self.nodes
        return {"TOPOFORM_URL": ",".join(x["url"] for x in chosen),
                "TOPOFORM_MANAGEMENT_URL": ",".join(x["management_url"] for x in chosen), "CI": "true"}

    def guest(self, n) -> Management:
        x = self.node(n)
        return Management(BrokerSettings(url=f"amqp://guest:guest@localhost:{x['amqp']}/",
                                         management_url=f"http://guest:guest@localhost:{x['http']}"))

    def up(self, n) -> bool:
        try:
            self.guest(n).session.get(self.guest(n).base + "/api/overview", timeout=3).raise_for_status()
            return True
        except Exception:  # noqa: BLE001 - any failure means "not answering"
            return False

    def admin(self, n=None) -> Management:
        for x in ([self.node(n)] if n else self.nodes):
            if self.up(x["name"]):
                return self.guest(x["name"])
        raise AssertionError("no node of the test cluster answers (scripts/cluster.sh status)")

    def script(self, *args) -> str:
        import subprocess

        r = subprocess.run(["bash", str(CLUSTER_SH), *map(str, args)], capture_output=True, text=True, timeout=400)
        if r.returncode:
            raise AssertionError(f"scripts/cluster.sh {' '.join(map(str, args))} failed: {r.stderr[-1500:]}")
        return r.stdout

    def kill(self, n) -> None:
        self.script("kill", n)

    def stop_node(self, n) -> None:
        self.script("stop-node", n)

    def start_node(self, n) -> None:
        self.script("start-node", n)

    def ensure_up(self) -> None:
        """Start every node that does not answer (for teardowns after kill/stop_node)."""
        for x in self.nodes:
            if not self.up(x["name"]):
                self.start_node(x["name"])


@pytest.fixture(scope="session")
def cluster(test_password) -> Cluster:
    """The 3-node test cluster (scripts/cluster.sh start) with the session's test administrator."""
    c = Cluster(TEST_USER, test_password)
    try:
        admin = c.admin()
    except AssertionError:
        pytest.fail("the test cluster does not answer on ports " + ", ".join(str(n["http"]) for n in c.nodes)
                    + "; start it with scripts/cluster.sh start", pytrace=False)
    admin.put(f"/api/users/{quote_segment(TEST_USER)}", {"password": test_password, "tags": "administrator"})
    yield c
    c.ensure_up()
    c.admin().delete(f"/api/users/{quote_segment(TEST_USER)}")


@pytest.fixture
def cluster_vhost(cluster):
    """A fresh vhost on the cluster with full permissions for the test user; deleted afterwards."""
    name = unique_vhost("tf-cluster")
    cluster.admin().create_vhost(name, user=TEST_USER)
    yield name
    cluster.ensure_up()
    cluster.admin().delete_vhost(name)
