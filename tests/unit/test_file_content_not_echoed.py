"""A file given with -f that is not a topology (a password file, /etc/passwd, a list) is named
and described, never quoted: its content may be a secret (the value of TOPOFORM_PASSWORD
written to a file by a pipeline step)."""
from __future__ import annotations

import pytest

from helpers import run_cli
from topoform.fmt import format_text
from topoform.errors import InputError

SECRET = "s3cr3t-Passw0rd"


@pytest.mark.parametrize("text, kind, line", [
    (f"{SECRET}\n", "a string", 1),
    (f"- {SECRET}\n- other\n", "a list", 1),
    (f"# a comment\n\n[{SECRET}]\n", "a list", 3),
    ("424242\n", "a number", 1),
    ("2024-01-31\n", "a date", 1),
    (f"!custom {SECRET}\n", "a tagged value", 1),
    (f"root:x:0:0:{SECRET}:/root:/bin/bash\ndaemon:x:1:1::/usr/sbin:/usr/sbin/nologin\n", "a string", 1),
])
def test_a_file_that_is_not_a_mapping_is_described_never_quoted(tmp_path, text, kind, line):
    path = tmp_path / "given.txt"
    path.write_text(text)
    secrets = (SECRET, "424242", "2024-01-31", "root:x")
    for argv in (["validate", "-f", path], ["plan", "--state", path, "-f", path], ["test-route", "x", "k", "-f", path]):
        r = run_cli(argv, secrets=secrets)
        assert r.code == 1, r
        assert f"{path}:{line}:1: the top level is {kind}, not a mapping" in r.err, r
        assert "Traceback" not in r.err
    r = run_cli(["validate", "--json", "-f", path], secrets=secrets)
    assert r.code == 1 and [(f["line"], f["message"].split(",")[0]) for f in r.json["findings"]] == \
        [(line, f"the top level is {kind}")], r


@pytest.mark.parametrize("text", [f"@{SECRET}\n", f"x: [a, #{SECRET}\n", "users:\n  u:\n    password: @" + SECRET + "\n",
                                  "users:\n  u:\n    password: #" + SECRET + "\n"])
def test_yaml_hints_do_not_repeat_a_value_without_a_key_or_of_a_secret_key(tmp_path, text):
    path = tmp_path / "t.yaml"
    path.write_text(text)
    r = run_cli(["validate", "-f", path], secrets=(SECRET,))
    assert r.code == 1 and "quote it" in r.err, r


def test_a_hint_still_shows_the_quoted_value_of_a_plain_key(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("vhosts:\n  /:\n    queues:\n      q:\n        bindings:\n          - {exchange: amq.topic, "
                    "routing_key: @x}\n")
    r = run_cli(["validate", "-f", path])
    assert r.code == 1 and 'quote it, routing_key: "@x"' in r.err, r


@pytest.mark.parametrize("text, kind", [(f"{SECRET}\n", "a single value"), (f"- {SECRET}\n", "a list")])
def test_fmt_refuses_a_file_that_is_not_a_mapping_and_leaves_it_unchanged(tmp_path, text, kind):
    with pytest.raises(InputError) as info:
        format_text(text, "p.txt")
    assert info.value.message == f"p.txt:1:1: the top level is {kind}, not a mapping (its content is not shown); " \
                                 "fmt left it unchanged"
    path = tmp_path / "p.txt"
    path.write_text(text)
    r = run_cli(["fmt", "-f", path], secrets=(SECRET,))
    assert r.code == 1 and "not a mapping" in r.err and r.out == "", r
    assert path.read_text() == text  # before: rewritten as YAML ("...\n" appended, a list reindented)
