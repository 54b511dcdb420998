"""The injected environment of a CLI run: streams, terminal flags, environment variables.

Tests build one with captured streams and a fake terminal flag and call
``main(argv, env)`` in-process.
"""
from __future__ import annotations

import enum
import io
import os
import sys
from dataclasses import dataclass, field
from typing import IO, Mapping


class ExitCode(enum.IntEnum):
    OK = 0
    ERROR = 1
    CHANGES = 2  # only with --detailed-exitcode
    BLOCKED = 3  # blocked changes, failed route expectations or tests


@dataclass
class Environment:
    stdout: IO[str] = field(default_factory=io.StringIO)
    stderr: IO[str] = field(default_factory=io.StringIO)
    stdin: IO[str] = field(default_factory=io.StringIO)
    environ: Mapping[str, str] = field(default_factory=dict)
    cwd: str = "."
    stdin_isatty: bool = False
    stdout_isatty: bool = False
    stderr_isatty: bool = False
    color_mode: str = "auto"  # --color auto|always|never (set by main() from the parsed flags)

    @classmethod
    def from_process(cls) -> "Environment":
        def isatty(stream) -> bool:
            try:
                return stream.isatty()
            except (AttributeError, ValueError):
                return False

        return cls(stdout=sys.stdout, stderr=sys.stderr, stdin=sys.stdin, environ=dict(os.environ),
                   cwd=os.getcwd(), stdin_isatty=isatty(sys.stdin), stdout_isatty=isatty(sys.stdout),
                   stderr_isatty=isatty(sys.stderr))

    @property
    def color(self) -> bool:
        """Whether to colour standard output.

        ``--color always`` / ``never`` decide outright (a flag beats the environment, as the
        NO_COLOR convention asks); ``auto`` colours only on a terminal, never when ``NO_COLOR``
        is set to a non-empty value (https://no-color.org) and never for ``TERM=dumb``.
        """
        if self.color_mode == "always":
            return True
        if self.color_mode == "never":
            return False
        return self.stdout_isatty and not self.environ.get("NO_COLOR") and self.environ.get("TERM") != "dumb"

    @property
    def ci(self) -> bool:
        """Running in a pipeline: ``CI`` set to true or 1 (any case; GitHub Actions, GitLab CI and most
        others set ``CI=true``). ``CI=false``, ``0`` or empty is not CI."""
        return self.environ.get("CI", "").strip().lower() in ("true", "1")

    def no_prompt_reason(self) -> str | None:
        """Why a confirmation cannot be asked (a pipeline never prompts, even on a terminal), or None."""
        if not self.stdin_isatty:
            return "stdin is not a terminal"
        if self.ci:
            return f"CI={self.environ.get('CI', '').strip()} is set (a pipeline never prompts, even on a terminal)"
        return None

    def out(self, text: str = "") -> None:
        self.stdout.write(text + "\n")

    def err(self, text: str = "") -> None:
        self.stderr.write(text + "\n")
        try:
            self.stderr.flush()
        except (AttributeError, ValueError):
            pass

    def ask(self, prompt: str) -> str:
        self.stdout.write(prompt)
        self.stdout.flush()
        return self.stdin.readline()
