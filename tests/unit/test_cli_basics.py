"""CLI boundary: usage errors exit 1 (never argparse's 2), --help exits 0."""
from helpers import run_cli


def test_usage_error_exits_1_not_2():
    r = run_cli(["no-such-command"])
    assert r.code == 1
    assert "Traceback" not in r.err and "error" in r.err


def test_help_exits_0():
    r = run_cli(["--help"])
    assert r.code == 0
