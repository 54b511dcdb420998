"""CLI boundary: usage errors exit 1 (never argparse's 2), --help exits 0."""
from helpers import run_cli


def test_usage_error_exits_1_not_2():
    r = run_cli(["no-such-command"])
    assert r.code == 1
    assert "Traceback" not in r.err and "error" in r.err


def test_help_exits_0():
    r = run_cli(["--help"])
    assert r.code == 0


def _options(parser) -> dict:
    """Every subcommand's option strings and defaults, by command name."""
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")  # noqa: SLF001
    return {name: sorted((tuple(a.option_strings), a.dest, repr(a.default)) for a in p._actions)  # noqa: SLF001
            for name, p in sub.choices.items()}


def test_the_parser_built_for_one_command_parses_it_as_the_whole_parser_does():
    """A run builds only the command it runs (the others are placeholders, never chosen)."""
    from topoform.cli import COMMANDS, build_parser

    whole = _options(build_parser())
    for name in COMMANDS:
        if name not in whole:
            continue
        assert _options(build_parser(only=name))[name] == whole[name], name


def test_only_a_first_word_naming_a_command_narrows_the_parser():
    from topoform.cli import command_word

    assert command_word(["plan", "-f", "x.yaml"]) == "plan"
    assert command_word(["--help", "plan"]) is None  # the top-level help lists every command's text
    assert command_word(["plam"]) is None  # argparse lists every choice
    assert command_word([]) is None


def test_the_top_level_help_still_describes_every_command(capsys):
    from topoform.cli import COMMANDS

    r = run_cli(["--help", "plan"])
    assert r.code == 0
    text = " ".join((r.out + capsys.readouterr().out).split())  # argparse prints help to sys.stdout
    assert "show what would change on the broker" in text and "(offline simulation)" in text
    r = run_cli(["plam"])
    assert r.code == 1 and all(f"'{name}'" in r.err for name in COMMANDS)
