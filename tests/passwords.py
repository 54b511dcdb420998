"""Generated passwords that break URLs and quoting, and the leak check (tests of issue 11, item 2).

Each password holds every character that must be percent-encoded in a URL or escaped in
quoting (``@ : / % # ? & = + space ' " \\``), a Latin-1 letter (``é``) and other Unicode
(``ж``, ``😀``), mixed with vowel-free filler so that no 4-character piece spells
anything an output could hold by chance. The filler holds no digits: with digits a piece
such as ``2557`` (from ``%57`` percent-encoded to ``%2557``) matched a random port number
in a log line (``127.0.0.1:52557``), and ``2025`` would match a date.
"""
from __future__ import annotations

import random
from urllib.parse import quote, quote_plus

SPECIALS = ["@", ":", "/", "%", "#", "?", "&", "=", "+", " ", "'", '"', "\\", "é", "ж", "😀"]
_FILLER = "QXZJKVWq"


def make_passwords(n: int = 3, seed: int = 0) -> list[str]:
    """``n`` passwords, each holding every special character once, in a different order."""
    out = []
    for i in range(n):
        rng = random.Random(seed * 1000 + i)
        chars = SPECIALS[:]
        rng.shuffle(chars)
        out.append("".join(c + "".join(rng.choice(_FILLER) for _ in range(2)) for c in chars))
    return out


def pieces(password: str) -> set[str]:
    """Every 4-character piece of the password, raw and in each percent-encoding a URL may carry."""
    forms = {password, quote(password, safe=""), quote(password), quote_plus(password)}
    return {form[i:i + 4] for form in forms for i in range(len(form) - 3)}


def assert_no_piece(password: str, *texts: str) -> None:
    """Fail naming the pieces (never the texts) when any piece of ``password`` is in any text."""
    found = sorted({p for p in pieces(password) for t in texts if p in t})
    assert not found, f"password pieces leaked: {found}"


def broker_commands() -> list[str]:
    """Every command whose parser takes broker settings (``--url``), found in the CLI itself."""
    from topoform.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")  # noqa: SLF001
    return sorted(name for name, p in sub.choices.items() if "--url" in p._option_string_actions)  # noqa: SLF001


# what each such command needs besides the broker flags to get as far as connecting
REQUIRED_ARGS = {"apply": ["--auto-approve"], "destroy": ["--auto-approve"], "upgrade-check": ["--to", "4.3"]}
TAKES_FILES = {"plan", "apply", "destroy", "upgrade-check"}
