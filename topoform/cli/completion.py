"""``topoform completion bash|zsh|fish``: print a shell completion script (generated from the parser)."""
from __future__ import annotations

from .env import Environment, ExitCode


def register(subparsers, parents):
    from ..completion import SHELLS

    parser = subparsers.add_parser(
        "completion", parents=[parents["common"]],
        help="print a shell completion script (bash, zsh or fish)",
        description="Print a completion script for the shell, generated from topoform's own argument parser. "
                    "bash: topoform completion bash > ~/.local/share/bash-completion/completions/topoform; "
                    "zsh: topoform completion zsh > \"${fpath[1]}/_topoform\"; "
                    "fish: topoform completion fish > ~/.config/fish/completions/topoform.fish. Exit 0, 1 error.")
    parser.add_argument("shell", choices=SHELLS, metavar="SHELL", help="bash, zsh or fish")
    return parser


def run(args, env: Environment) -> int:
    from ..completion import completion_script
    from . import build_parser

    env.stdout.write(completion_script(build_parser(), args.shell))
    return ExitCode.OK
