"""A terminal that informs (issue 12 item 7), through the CLI in-process and the progress writers.

Progress ETA and migration rates, NO_COLOR and --color, test-route's vhost, -f - and
TOPOFORM_FILE with several paths, no abbreviated flags, usage errors pointing at the
subcommand's help, URLs checked up front without echoing credentials, --debug and usage
errors.
"""
from __future__ import annotations

import io
import os
import re

import pytest
from helpers import run_cli

from topoform.apply.progress import LineProgress, TerminalProgress, format_duration, interruption_lines
from topoform.planner.plan import Action, Change

TOPO = """\
vhosts:
  shop:
    exchanges: {orders: {type: topic}}
    queues:
      billing: {durable: true, bindings: [{exchange: orders, routing_key: "order.*"}]}
"""
STATE = '{"vhosts": [{"name": "shop"}]}'


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


# ---------------------------------------------------------------- progress

def test_progress_shows_an_eta_from_the_rate_so_far():
    out, clock = io.StringIO(), Clock()
    p = LineProgress(out, interval=5, clock=clock)
    p.start(100)
    for _ in range(25):
        clock.t += 0.4  # 25 changes in 10 s: 2.5/s, 75 left: 30 s
        p.done(None)
    assert "ETA 30s" in p.status()
    assert re.search(r"ETA \d+s", out.getvalue())
    for _ in range(75):
        clock.t += 0.4
        p.done(None)
    assert "ETA" not in p.status()  # finished: nothing left to estimate


@pytest.mark.parametrize("seconds, text", [(0, "0s"), (59.4, "59s"), (65, "1m05s"), (3720, "1h02m")])
def test_durations_are_short(seconds, text):
    assert format_duration(seconds) == text


def test_migration_lines_show_messages_moved_and_their_rate():
    out, clock = io.StringIO(), Clock()
    p = LineProgress(out, clock=clock)
    p.start(1)
    clock.t = 1.0
    p.note("Queue orders: consumers cancelled (their connections were closed)")
    clock.t = 5.0  # the move took 4 s
    p.note("Queue orders: 20000 message(s) moved to topoform.migrate.orders")
    clock.t = 6.0
    p.note("Queue orders: 500 more message(s) moved to topoform.migrate.orders")
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("closed)")  # no rate on other lines
    assert lines[1].endswith("(5,000 msg/s over 4.0s)")
    assert lines[2].endswith("(500 msg/s over 1.0s)")
    assert "20,500 messages moved" in p.status()


def test_terminal_progress_adds_the_rate_too():
    out, clock = io.StringIO(), Clock()
    p = TerminalProgress(out, clock=clock)
    p.start(2)
    clock.t = 2.0
    p.note("Queue q: 100 message(s) moved back")
    assert "(50 msg/s over 2.0s)" in out.getvalue()


def test_interruption_lines_name_done_and_not_done_and_count_the_rest():
    changes = [Change(Action.CREATE, "queue", "v", f"q{i}") for i in range(30)]
    lines = interruption_lines(changes, changes[:3], limit=5)
    assert lines[0].startswith("Interrupted: 3 of 30 changes done, 27 not done")
    assert sum(1 for line in lines if line.strip().startswith("Done: create queue")) == 3
    assert "  Not done: ... and 22 more" in lines
    migrate = [Change(Action.MIGRATE, "queue", "v", "m")]
    assert any("--migrate" in line for line in interruption_lines(migrate, []))


# ---------------------------------------------------------------- colour

def _plan_argv(tmp_path, *extra):
    (tmp_path / "topoform.yaml").write_text(TOPO)
    (tmp_path / "s.json").write_text(STATE)
    return ["plan", "--state", "s.json", *extra]


@pytest.mark.parametrize("environ, isatty, flag, coloured", [
    ({}, True, None, True),
    ({}, False, None, False),
    ({"NO_COLOR": "1"}, True, None, False),
    ({"NO_COLOR": ""}, True, None, True),  # set but empty: the convention says colour stays
    ({"TERM": "dumb"}, True, None, False),
    ({}, False, "always", True),
    ({"NO_COLOR": "1"}, True, "always", True),  # a flag beats the environment
    ({}, True, "never", False),
    ({}, True, "auto", True),
])
def test_colour_follows_no_color_and_the_color_flag(tmp_path, environ, isatty, flag, coloured):
    argv = _plan_argv(tmp_path, *(["--color", flag] if flag else []))
    r = run_cli(argv, cwd=tmp_path, stdout_isatty=isatty, environ=environ)
    assert r.code == 0, r
    assert ("\x1b[32m" in r.out) is coloured
    assert re.sub(r"\x1b\[[0-9;]*m", "", r.out) == run_cli(argv[:3], cwd=tmp_path).out  # colour only decorates


@pytest.mark.parametrize("command", ["plan", "apply", "show", "diff"])
def test_every_command_that_colours_takes_color(command):
    from topoform.cli import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    assert "--color {auto,always,never}" in " ".join(subparsers.choices[command].format_help().split())


def test_a_bad_color_value_is_a_usage_error():
    r = run_cli(["plan", "--color", "sometimes"])
    assert r.code == 1 and "invalid choice" in r.err and "topoform plan --help" in r.err


def test_show_honours_color(tmp_path):
    r = run_cli(_plan_argv(tmp_path, "--out", "p.json"), cwd=tmp_path)
    assert r.code == 0, r
    assert "\x1b[" in run_cli(["show", "p.json", "--color", "always"], cwd=tmp_path).out
    assert "\x1b[" not in run_cli(["show", "p.json"], cwd=tmp_path, stdout_isatty=True,
                                  environ={"NO_COLOR": "yes"}).out


# ---------------------------------------------------------------- test-route's vhost

def test_test_route_picks_the_only_vhost(tmp_path):
    (tmp_path / "t.yaml").write_text(TOPO)
    r = run_cli(["test-route", "-f", "t.yaml", "orders", "order.created", "--json"], cwd=tmp_path)
    assert r.code == 0, r
    assert r.json["vhost"] == "shop" and r.json["queues"] == ["billing"]


def test_test_route_with_several_vhosts_picks_the_one_holding_the_exchange_or_asks(tmp_path):
    (tmp_path / "t.yaml").write_text(TOPO + "  other:\n    queues: {x: {durable: true}}\n")
    r = run_cli(["test-route", "-f", "t.yaml", "orders", "order.created", "--json"], cwd=tmp_path)
    assert r.code == 0 and r.json["vhost"] == "shop", r
    r = run_cli(["test-route", "-f", "t.yaml", "", "x"], cwd=tmp_path)
    assert r.code == 1 and "several vhosts" in r.err and "--vhost" in r.err, r
    r = run_cli(["test-route", "-f", "t.yaml", "--vhost", "other", "", "x"], cwd=tmp_path)
    assert r.code == 0 and r.out.split()[0] == "x", r


# ---------------------------------------------------------------- where the files come from

def test_a_topology_on_standard_input(tmp_path):
    r = run_cli(["test-route", "-f", "-", "orders", "order.paid", "--json"], cwd=tmp_path, stdin=TOPO)
    assert r.code == 0 and r.json["queues"] == ["billing"], r
    r = run_cli(["validate", "-f", "-", "--json"], cwd=tmp_path, stdin=TOPO)
    assert r.code == 0 and r.json["valid"] is True, r


def test_errors_in_standard_input_are_positioned_at_stdin(tmp_path):
    r = run_cli(["validate", "-f", "-"], cwd=tmp_path, stdin="vhosts:\n  v:\n    queues: {q: {bogus: 1}}\n")
    assert r.code == 1 and "<stdin>:3:" in r.err and "bogus" in r.err, r


def test_standard_input_with_other_files_and_variables(tmp_path):
    (tmp_path / "more.yaml").write_text("vhosts:\n  shop:\n    queues: {audit: {durable: true, bindings: "
                                        "[{exchange: orders, routing_key: '#'}]}}\n")
    text = TOPO.replace("billing:", "${name}:") + "variables: {name: {default: billing}}\n"
    r = run_cli(["test-route", "-f", "-", "-f", "more.yaml", "orders", "order.x", "--json"], cwd=tmp_path,
                stdin=text)
    assert r.code == 0 and r.json["queues"] == ["audit", "billing"], r
    r = run_cli(["test-route", "-f", "-", "--var", "name=invoices", "orders", "order.x", "--json"], cwd=tmp_path,
                stdin=text)
    assert r.code == 0 and r.json["queues"] == ["invoices"], r


def test_standard_input_once_and_not_for_fmt(tmp_path):
    r = run_cli(["validate", "-f", "-", "-f", "-"], cwd=tmp_path, stdin=TOPO)
    assert r.code == 1 and "once" in r.err
    r = run_cli(["fmt", "-f", "-"], cwd=tmp_path, stdin=TOPO)
    assert r.code == 1 and "standard input" in r.err and "Traceback" not in r.err


def test_topoform_file_takes_several_paths(tmp_path):
    (tmp_path / "a.yaml").write_text(TOPO)
    (tmp_path / "b.yaml").write_text("vhosts:\n  other:\n    queues: {x: {durable: true}}\n")
    value = os.pathsep.join([str(tmp_path / "a.yaml"), "", str(tmp_path / "b.yaml")])
    r = run_cli(["validate", "--json"], cwd=tmp_path, environ={"TOPOFORM_FILE": value})
    assert r.code == 0, r
    assert [os.path.basename(f) for f in r.json["files"]] == ["a.yaml", "b.yaml"]
    r = run_cli(["validate"], cwd=tmp_path, environ={"TOPOFORM_FILE": value + os.pathsep + "missing.yaml"})
    assert r.code == 1 and "missing.yaml" in r.err and "$TOPOFORM_FILE" in r.err


# ---------------------------------------------------------------- the parser

@pytest.mark.parametrize("argv, full", [
    (["apply", "--auto", "-f", "x.yaml"], "--auto"),
    (["plan", "--allow-data", "--state", "s.json"], "--allow-data"),
    (["validate", "--fil", "x.yaml"], "--fil"),
    (["test-route", "--ex", "a", "x", "k"], "--ex"),
])
def test_abbreviated_flags_are_not_accepted(tmp_path, argv, full):
    r = run_cli(argv, cwd=tmp_path)
    assert r.code == 1 and full in r.err and "unrecognized arguments" in r.err, r


def test_every_parser_refuses_abbreviations():
    from topoform.cli import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    assert parser.allow_abbrev is False
    assert all(p.allow_abbrev is False for p in subparsers.choices.values())


@pytest.mark.parametrize("argv, command", [
    (["plan", "--bogus"], "plan"),
    (["test-route"], "test-route"),
    (["apply", "--lock-timeout", "soon"], "apply"),
    (["show"], "show"),
    (["apply", "--rollback"], "apply"),  # found by the command itself, after parsing
    (["validate", "-f", "-", "-f", "-"], "validate"),
])
def test_usage_errors_point_at_the_subcommands_own_help(argv, command):
    r = run_cli(argv)
    assert r.code == 1 and f"see 'topoform {command} --help'" in r.err, r
    assert len(r.err.strip().splitlines()) == 1


@pytest.mark.parametrize("argv", [["plan", "--bogus", "--debug"], ["--debug", "test-route"],
                                  ["apply", "--url", "ftp://u:s3cret-pw@h/", "--debug", "-f", "x.yaml"]])
def test_debug_never_turns_a_usage_error_into_a_traceback(argv):
    r = run_cli(argv)
    assert r.code == 1 and "Traceback" not in r.err and "s3cret-pw" not in r.err, r


@pytest.mark.parametrize("flag, url, says", [
    ("--url", "http://u:s3cret-pw@localhost:15672/", "must be an amqp or amqps URL"),
    ("--url", "amqp://u:s3cret-pw@localhost:port/", "port"),
    ("--url", "localhost:5672", "cannot be parsed as a URL"),
    ("--management-url", "amqp://u:s3cret-pw@localhost:5672/", "must be an http or https URL"),
    ("--management-url", "https://u:s3cret-pw@localhost:99999999999/", "port"),
])
def test_urls_are_checked_up_front_without_echoing_credentials(tmp_path, flag, url, says):
    # no topology file exists: the URL is refused before anything is read or contacted
    r = run_cli(["plan", flag, url], cwd=tmp_path)
    assert r.code == 1 and says in r.err and flag in r.err, r
    assert "s3cret-pw" not in r.err + r.out and len(r.err.strip().splitlines()) == 1
    r = run_cli(["plan"], cwd=tmp_path, environ={"TOPOFORM_URL" if flag == "--url" else "TOPOFORM_MANAGEMENT_URL": url})
    assert r.code == 1 and says in r.err and "TOPOFORM_" in r.err and "s3cret-pw" not in r.err, r


@pytest.mark.parametrize("argv, hint", [
    (["validate", "topo.yaml"], "topology files are given with -f: topoform validate -f topo.yaml"),
    (["plan", "a.yaml", "b.YML"], "topology files are given with -f: topoform plan -f a.yaml -f b.YML"),
])
def test_a_topology_file_given_without_f_gets_the_command_to_write(tmp_path, argv, hint):
    r = run_cli(argv, cwd=tmp_path)
    assert r.code == 1 and "unrecognized arguments" in r.err and f"(hint: {hint})" in r.err, r


def test_other_stray_words_keep_the_help_hint(tmp_path):
    r = run_cli(["validate", "extra"], cwd=tmp_path)
    assert r.code == 1 and "(hint: see 'topoform validate --help')" in r.err, r
