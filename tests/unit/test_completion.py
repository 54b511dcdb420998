"""``topoform completion bash|zsh|fish``: scripts generated from the parser, valid, complete."""
from __future__ import annotations

import argparse
import shutil
import subprocess

import pytest

from helpers import run_cli
from topoform.cli import build_parser


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("no subcommands")


def _script(shell: str) -> str:
    r = run_cli(["completion", shell])
    assert r.code == 0 and r.err == "", r
    return r.out


def _needs(program: str) -> str:
    path = shutil.which(program)
    if path is None:  # scripts/setup.sh installs bash, zsh and fish; a machine without them cannot check syntax
        pytest.fail(f"{program} is not installed (run scripts/setup.sh)")
    return path


def test_bash_script_is_valid_and_lists_every_subcommand(tmp_path):
    script = _script("bash")
    path = tmp_path / "topoform.bash"
    path.write_text(script)
    r = subprocess.run([_needs("bash"), "-n", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    commands = _subcommands()
    assert len(commands) >= 13
    for name, sub in commands.items():
        assert f"        {name})" in script, name
        for action in sub._actions:
            if action.help != argparse.SUPPRESS:
                for flag in action.option_strings:
                    assert flag in script, (name, flag)
    # hidden options stay hidden
    assert "--channels" not in script


def _complete(script_path, words: list[str]) -> list[str]:
    """Run the bash completion function for ``words`` (the last one being completed)."""
    line = " ".join(f"'{w}'" for w in words)
    program = (f"source '{script_path}'; COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; _topoform; "
               'printf "%s\\n" "${COMPREPLY[@]}"')
    r = subprocess.run([_needs("bash"), "-c", program], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return sorted(x for x in r.stdout.splitlines() if x)


@pytest.mark.parametrize("words, expected", [
    (["topoform", "pl"], ["plan"]),
    (["topoform", "co"], ["completion"]),
    (["topoform", "plan", "--form"], ["--format"]),
    (["topoform", "plan", "--format", ""], ["json", "markdown", "text"]),
    (["topoform", "show", "x.json", "--format", "m"], ["markdown"]),
    (["topoform", "completion", ""], ["bash", "fish", "zsh"]),
    (["topoform", "fmt", "--ch"], ["--check"]),
    (["topoform", "diff", "--pr"], ["--prune"]),
    (["topoform", "--debug", "plan", "--det"], ["--detailed-exitcode"]),
])
def test_bash_completes_commands_options_and_choices(words, expected, tmp_path):
    path = tmp_path / "topoform.bash"
    path.write_text(_script("bash"))
    assert _complete(path, words) == expected


def test_bash_completes_files_for_path_options(tmp_path):
    path = tmp_path / "topoform.bash"
    path.write_text(_script("bash"))
    (tmp_path / "orders.yaml").write_text("")
    assert _complete(path, ["topoform", "plan", "--state", str(tmp_path / "ord")]) == [str(tmp_path / "orders.yaml")]
    assert _complete(path, ["topoform", "validate", "-f", str(tmp_path / "ord")]) == [str(tmp_path / "orders.yaml")]
    assert _complete(path, ["topoform", "plan", "--url", "amq"]) == []  # a value, not a file


def test_zsh_script_is_valid_and_lists_every_subcommand(tmp_path):
    script = _script("zsh")
    assert script.startswith("#compdef topoform\n")
    path = tmp_path / "_topoform"
    path.write_text(script)
    r = subprocess.run([_needs("zsh"), "-n", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    for name in _subcommands():
        assert f"'{name}:" in script and f"                {name}) _arguments" in script, name
    assert "'--format[" in script and ":value:(text json markdown)" in script


def test_fish_script_is_valid_and_lists_every_subcommand(tmp_path):
    script = _script("fish")
    path = tmp_path / "topoform.fish"
    path.write_text(script)
    r = subprocess.run([_needs("fish"), "--no-execute", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    for name in _subcommands():
        assert f"-n '__fish_use_subcommand' -a {name} " in script, name
        assert f"'__fish_seen_subcommand_from {name}'" in script, name
    assert "-l format -x -a 'text json markdown'" in script


def test_fish_completes_subcommands(tmp_path):
    path = tmp_path / "topoform.fish"
    path.write_text(_script("fish"))
    r = subprocess.run([_needs("fish"), "-c", f"source {path}; complete -C 'topoform sh'"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert [line.split("\t")[0] for line in r.stdout.splitlines()] == ["show"]


def test_unknown_shell_is_a_one_line_usage_error():
    r = run_cli(["completion", "tcsh"])
    assert r.code == 1 and r.out == "" and "invalid choice" in r.err and len(r.err.strip().splitlines()) == 1
