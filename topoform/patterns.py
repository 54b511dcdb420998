"""Whether a regular expression the broker will compile (policy patterns, permissions) is invalid.

The broker compiles these with Erlang's ``re`` (PCRE on 3.10 and 4.0, PCRE2 on 4.3); topoform has
only Python's ``re``, which differs: ``\\Q..\\E``, ``\\p{L}``, ``(*UTF)``, ``(?<name>..)`` and
alternatives of different lengths in a lookbehind are valid PCRE that Python refuses. So a pattern
is called invalid (:func:`pcre_invalid`) only where Python's error is one of the structural ones
both engines share (measured on 3.10.8, 4.0.5 and 4.3.6 for policies, operator policies,
permissions and topic permissions: ``tests/integration/test_patterns_broker.py``); any other
Python error is only a doubt (:func:`python_error`).

Pure: imports only ``re``.

>>> pcre_invalid("("), pcre_invalid("\\\\Qa(\\\\E"), pcre_invalid("^orders\\\\.")
('missing ), unterminated subpattern', None, None)
"""
from __future__ import annotations

import re
import warnings

# Python's words for the mistakes PCRE refuses too (each measured on the three brokers)
_SHARED = ("missing ), unterminated subpattern", "unbalanced parenthesis", "unterminated character set",
           "min repeat greater than max repeat", "nothing to repeat", "multiple repeat",
           "bad escape (end of pattern)", "missing -, : or )", "invalid group reference",
           "look-behind requires fixed-width pattern")
# PCRE syntax that changes how the rest parses, or that Python reads as another mistake
_PCRE_ONLY = ("(*", "\\Q", "\\E", "(?|", "(?>", "\\p", "\\P", "\\X", "\\R", "\\K", "\\G", "\\h", "\\H",
              "\\N", "\\g", "\\k", "(?R", "(?&", "(?(", "(?P>", "(?+", "(?-", "[[:")


def python_error(pattern: str) -> str | None:
    """Python's ``re`` error for ``pattern`` (without its position), or None when it compiles."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # FutureWarning: possible nested set ([[:alpha:]])
            re.compile(pattern)
    except re.error as exc:
        return str(exc.msg)
    except (RecursionError, OverflowError, ValueError) as exc:  # pragma: no cover - pathological input
        return type(exc).__name__
    return None


def pcre_invalid(pattern: str) -> str | None:
    """The reason the broker refuses ``pattern`` where Python and PCRE agree it is invalid, else None."""
    error = python_error(pattern)
    if error is None:
        return None
    shared = error in _SHARED or re.fullmatch(r"bad character range .-.|invalid group reference \d+", error) is not None
    if not shared or any(s in pattern for s in _PCRE_ONLY) or re.search(r"\(\?<[A-Za-z_]", pattern):
        return None
    if error == "multiple repeat" and re.search(r"[*+?}]\+", pattern):
        return None  # a possessive quantifier (a++): PCRE, and Python from 3.11
    if error == "look-behind requires fixed-width pattern" and not re.search(r"\(\?<[=!][^)]*[*+?{]", pattern):
        return None  # alternatives of different fixed lengths: PCRE accepts them
    return error
