"""Commands other than validate fold repeated warnings of one kind into one line."""
from __future__ import annotations

import io

from topoform.cli.common import print_warnings
from topoform.cli.env import Environment
from topoform.errors import Finding


def _env():
    err = io.StringIO()
    return Environment(stdout=io.StringIO(), stderr=err, stdin=io.StringIO(), environ={}, cwd="."), err


def test_repeated_warnings_are_folded_after_the_first_and_other_kinds_kept():
    env, err = _env()
    ws = [Finding("transient", f"queue q{i} is transient", "warning", subject=f"queue q{i}") for i in range(7)]
    ws.append(Finding("typo", "did you mean x-message-ttl", "warning"))
    print_warnings(ws, env)
    lines = err.getvalue().splitlines()
    assert lines[0] == "warning: queue q0 is transient"
    assert lines[1].startswith("warning: 6 more like this (transient: queue q1, queue q2")
    assert lines[1].endswith("..., 'topoform validate' lists each") or "'topoform validate' lists each" in lines[1]
    assert lines[2] == "warning: did you mean x-message-ttl"
    assert len(lines) == 3


def test_validate_lists_every_warning(tmp_path):
    from helpers import run_cli

    f = tmp_path / "t.yaml"
    f.write_text("vhosts:\n  v:\n    queues:\n" + "".join(f"      q{i}: {{}}\n" for i in range(4)))
    r = run_cli(["validate", "-f", f, "--rabbitmq-version", "4.3"])
    assert r.code == 0 and r.err.count("transient but not exclusive") == 4
    r = run_cli(["test", "-f", f, "--rabbitmq-version", "4.3"])
    assert r.err.count("transient but not exclusive") == 1 and "3 more like this" in r.err
