"""Fleets: the targets file of ``--targets FILE`` (SPEC section 9).

```yaml
targets:
  prod-eu: {url: "amqps://topoform@rabbit-eu:5671/", password: {env: PROD_EU_PASSWORD}, env: prod, ca_cert: certs/eu.pem}
  prod-us: {url: "amqps://topoform@rabbit-us:5671/", management_url: "https://rabbit-us:15671/",
            password: {file: secrets/us.txt}, env: prod}
```

Each target: ``url`` (AMQP, required), ``management_url``, ``username``, ``password``
(``{env: VAR}`` or ``{file: PATH}``; never the password itself), ``env`` (the
environment whose variables it gets), ``ca_cert``. Relative paths are relative to the
targets file. :func:`read_targets` checks the file (one line per problem, PATH:LINE:COL
where known); :func:`select` applies ``--only`` globs; :func:`worst_exit` is the fleet's
exit code (1 over 3 over 2 over 0). Pure apart from reading the file and the secrets.
"""
from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from typing import Mapping, Sequence

import yaml

from .errors import InputError, UsageError

__all__ = ["Target", "read_targets", "select", "worst_exit", "resolve_password"]

_KEYS = {"url", "management_url", "username", "password", "env", "ca_cert"}
_EXIT_RANK = {0: 0, 2: 1, 3: 2, 1: 3}  # 1 over 3 over 2 over 0


@dataclass(frozen=True)
class Target:
    name: str
    url: str
    management_url: str | None = None
    username: str | None = None
    password: Mapping | None = None  # {"env": VAR} or {"file": PATH} (PATH absolute)
    env: str | None = None
    ca_cert: str | None = None


def worst_exit(codes: Sequence[int]) -> int:
    """The fleet's exit code: 1 over 3 over 2 over 0 (anything else counts as 1)."""
    worst = 0
    for code in codes:
        code = code if code in _EXIT_RANK else 1
        if _EXIT_RANK[code] > _EXIT_RANK[worst]:
            worst = code
    return worst


def read_targets(path: str, cwd: str = ".") -> list[Target]:
    """The targets of a targets file, in file order. InputError (one line) on any problem."""
    full = path if os.path.isabs(path) else os.path.join(cwd, path)
    try:
        with open(full, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except OSError as exc:
        raise InputError(f"--targets {path}: cannot read it: {exc.strerror or type(exc).__name__}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else path
        raise InputError(f"{where}: invalid YAML: {exc.problem}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: invalid YAML ({type(exc).__name__})") from None
    if not isinstance(data, dict) or not isinstance(data.get("targets"), dict) or not data["targets"]:
        raise InputError(f"{path}: expected 'targets: {{NAME: {{url: ..., password: {{env: VAR}}, env: ...}}}}'")
    unknown = sorted(set(data) - {"targets"})
    if unknown:
        raise InputError(f"{path}: unknown top-level key '{unknown[0]}' (only 'targets')")
    base = os.path.dirname(os.path.abspath(full))
    out = []
    for name, spec in data["targets"].items():
        name = str(name)
        if not isinstance(spec, dict):
            raise InputError(f"{path}: target '{name}' must be a mapping with at least 'url'")
        bad = sorted(set(spec) - _KEYS)
        if bad:
            raise InputError(f"{path}: target '{name}' has unknown key '{bad[0]}' (allowed: {', '.join(sorted(_KEYS))})")
        url = spec.get("url")
        if not isinstance(url, str) or not url:
            raise InputError(f"{path}: target '{name}' needs 'url' (the AMQP URL)")
        for key in ("management_url", "username", "env", "ca_cert"):
            if spec.get(key) is not None and not isinstance(spec[key], str):
                raise InputError(f"{path}: target '{name}': '{key}' must be a string")
        password = spec.get("password")
        if password is not None:
            if not (isinstance(password, dict) and len(password) == 1 and set(password) <= {"env", "file"}
                    and isinstance(next(iter(password.values())), str)):
                raise InputError(f"{path}: target '{name}': password must be {{env: VARIABLE}} or {{file: PATH}}, "
                                 "never the password itself")
            if "file" in password and not os.path.isabs(password["file"]):
                password = {"file": os.path.join(base, password["file"])}
        ca = spec.get("ca_cert")
        if ca and not os.path.isabs(ca):
            ca = os.path.join(base, ca)
        out.append(Target(name=name, url=url, management_url=spec.get("management_url"),
                          username=spec.get("username"), password=password, env=spec.get("env"), ca_cert=ca))
    return out


def select(targets: Sequence[Target], only: Sequence[str] | None) -> list[Target]:
    """The targets matching any ``--only`` glob (all without ``--only``); a glob matching none is an error."""
    if not only:
        return list(targets)
    for glob in only:
        if not any(fnmatch.fnmatchcase(t.name, glob) for t in targets):
            raise UsageError(f"--only {glob!r} matches no target (targets: {', '.join(t.name for t in targets)})")
    return [t for t in targets if any(fnmatch.fnmatchcase(t.name, g) for g in only)]


def resolve_password(target: Target, environ: Mapping[str, str]) -> str | None:
    """The target's password from its ``{env}`` or ``{file}`` (None: the URL's own). InputError naming the source."""
    ref = target.password
    if not ref:
        return None
    if "env" in ref:
        value = environ.get(ref["env"])
        if not value:
            raise InputError(f"target '{target.name}': password variable {ref['env']} is not set")
        return value
    try:
        with open(ref["file"], encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"target '{target.name}': cannot read password file {ref['file']}: "
                         f"{getattr(exc, 'strerror', None) or type(exc).__name__}") from None
    text = text[:-1] if text.endswith("\n") else text
    if not text:
        raise InputError(f"target '{target.name}': password file {ref['file']} is empty")
    return text
