"""``topoform fmt [--check] [-f FILES]``: rewrite topology files in canonical form, comments kept.

Prints the path of every file it rewrote (with ``--check``: would rewrite) on stdout.
Exit 0; with ``--check`` 3 when a file would change (nothing is written); 1 when a file
cannot be read or formatted (the others are still handled). See :mod:`topoform.fmt`.
"""
from __future__ import annotations

import os

from ..errors import InputError
from .env import Environment, ExitCode


def register(subparsers, parents):
    parser = subparsers.add_parser(
        "fmt", parents=[parents["common"], parents["files"]],
        help="rewrite topology files in canonical form (comments kept)",
        description="Rewrite the topology files in canonical form: stable key order, canonical quoting, flow "
                    "style for short mappings; comments are kept, and a file is only rewritten when it means "
                    "exactly what it did. Exit 0; with --check 3 when a file would change; 1 error.")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; list the files that are not formatted and exit 3 if any")
    return parser


def run(args, env: Environment) -> int:
    from ..fmt import format_file, write_atomically
    from ..load import discover_files

    paths = discover_files(args.files or [], env.environ, env.cwd)
    changed: list[str] = []
    failed = 0
    for path in paths:
        full = path if os.path.isabs(path) else os.path.join(env.cwd, path)
        try:
            result = format_file(full, display=path)
            if result.changed:
                changed.append(path)
                if not args.check:
                    try:
                        write_atomically(full, result.text)
                    except OSError as exc:
                        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
        except InputError as exc:
            failed += 1
            line = f"topoform: error: {exc.message}"
            env.err(line + (f" (hint: {exc.hint})" if exc.hint else ""))
    for path in changed:
        env.out(path)
    if args.check and changed:
        n = len(changed)
        env.err(f"{n} file{'s' if n != 1 else ''} would be reformatted; run 'topoform fmt' to rewrite "
                f"{'them' if n != 1 else 'it'}")
    if failed:
        return ExitCode.ERROR
    if args.check and changed:
        return ExitCode.BLOCKED
    return ExitCode.OK
