"""Finding the topology files a command reads (SPEC section 3), for :mod:`topoform.load`.

``-f`` paths first (a directory means every ``*.yaml``/``*.yml`` directly in it, ``-``
standard input); without them ``$TOPOFORM_FILE`` (one path, or several separated by
``os.pathsep``: ``:`` on Linux and macOS, ``;`` on Windows), else ``./topoform.yaml``.

Stdlib only; never prints and never reads a stream itself: the CLI reads standard input
and hands its text over as a :class:`StdinFile`.
"""
from __future__ import annotations

import os
from typing import Mapping, Sequence

from .errors import InputError

__all__ = ["DEFAULT_FILE", "ENV_FILE", "STDIN_NAME", "StdinFile", "discover_files", "env_file_paths"]

DEFAULT_FILE = "topoform.yaml"
ENV_FILE = "TOPOFORM_FILE"
YAML_SUFFIXES = (".yaml", ".yml")
STDIN_NAME = "<stdin>"  # how a topology read with -f - is named in messages


class StdinFile(str):
    """``-f -``: a topology read from standard input.

    A ``str`` equal to ``"-"`` (so that it travels wherever a path does) carrying the
    text read and the directory the command runs in (``include:`` and ``environments/``
    are looked for there). ``display`` is the name findings show (``<stdin>``).
    """

    text: str
    cwd: str

    def __new__(cls, text: str, cwd: str = "."):
        self = super().__new__(cls, "-")
        self.text = text
        self.cwd = cwd
        return self

    @property
    def display(self) -> str:
        return resolve(self.cwd, STDIN_NAME)


def resolve(cwd: str, path: str) -> str:
    """``path`` as the user gave it when it works from here, else joined with ``cwd``.

    Messages show the path the user typed; only when the command runs for another
    directory (tests run the CLI in-process with their own cwd) is it prefixed.
    """
    if os.path.isabs(path) or os.path.abspath(cwd) == os.getcwd():
        return path
    return os.path.join(cwd, path)


def dir_files(directory: str) -> list[str]:
    names = sorted(n for n in os.listdir(directory) if n.endswith(YAML_SUFFIXES) and not n.startswith("."))
    return [os.path.join(directory, n) for n in names if os.path.isfile(os.path.join(directory, n))]


def env_file_paths(value: str) -> list[str]:
    """``$TOPOFORM_FILE`` as paths: split on ``os.pathsep``, empty parts ignored."""
    return [p for p in value.split(os.pathsep) if p.strip()]


def discover_files(file_args: Sequence[str], environ: Mapping[str, str], cwd: str) -> list[str]:
    """The topology files a command reads (see the module docstring).

    Raises InputError naming what was looked for when nothing is found.
    """
    if file_args:
        sources = [(p, "-f") for p in file_args]
    elif environ.get(ENV_FILE) and env_file_paths(environ[ENV_FILE]):
        sources = [(p, f"${ENV_FILE}") for p in env_file_paths(environ[ENV_FILE])]
    else:
        default = resolve(cwd, DEFAULT_FILE)
        if not os.path.isfile(default):
            raise InputError(f"no topology file: no -f given, ${ENV_FILE} is not set and {default} does not exist",
                             hint="pass -f FILE or -f DIRECTORY")
        return [default]
    found: list[str] = []
    for given, origin in sources:
        if isinstance(given, StdinFile):
            found.append(given)
            continue
        path = resolve(cwd, given)
        if os.path.isdir(path):
            files = dir_files(path)
            if not files:
                raise InputError(f"no *.yaml or *.yml files in directory {given} (from {origin})")
            found.extend(files)
        elif os.path.isfile(path):
            found.append(path)
        elif given == "-":
            raise InputError(f"'-' (standard input) cannot be read here (from {origin})",
                             hint="pass the topology with -f - on the command line")
        elif os.path.exists(path):  # /dev/null, a pipe (-f <(...)), a socket: exists, holds no topology file
            import stat

            mode = os.stat(path).st_mode
            what = ("a character device (/dev/null reads as empty)" if stat.S_ISCHR(mode) else
                    "a pipe" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a special file")
            raise InputError(f"topology file {given} is not a regular file: it is {what} (from {origin})",
                             hint="name a YAML file or a directory, or pass the topology on standard input "
                                  "with -f -")
        else:
            raise InputError(f"topology file not found: {given} (from {origin})")
    return found
