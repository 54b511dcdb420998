"""Secrets by reference: ``{env: NAME}`` / ``{file: PATH}`` resolution and RabbitMQ password hashes.

Nothing here prints or returns a secret in a message: errors name the variable or the
file, never a value. Resolved values are registered with
:func:`topoform.broker.settings.register_secret`, so every output path redacts them too.

Hashing follows the broker (``rabbit_password_hashing_sha256`` / ``_sha512``): a random
4-byte salt, ``digest(salt + utf8(password))``, stored as ``base64(salt + digest)``.
:func:`check_password` answers whether a stored hash belongs to a password by hashing
with the stored salt; neither value leaves this module.

Example::

    >>> h = hash_password("s3cret")
    >>> check_password("s3cret", h), check_password("other", h)
    (True, False)
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass, field
from typing import Any, Mapping
from urllib.parse import urlsplit

from ..errors import InputError

SHA256 = "rabbit_password_hashing_sha256"
SHA512 = "rabbit_password_hashing_sha512"
MD5 = "rabbit_password_hashing_md5"
ALGORITHMS = {SHA256: hashlib.sha256, SHA512: hashlib.sha512, MD5: hashlib.md5}
ALIASES = {"sha256": SHA256, "sha512": SHA512, "md5": MD5}


def algorithm_name(name: str | None) -> str:
    """The broker's module name for an algorithm (``sha512`` -> ``rabbit_password_hashing_sha512``)."""
    if not name:
        return SHA256
    name = ALIASES.get(name, name)
    if name not in ALGORITHMS:
        raise InputError(f"unknown hashing_algorithm {name!r} (expected one of: {', '.join(sorted(ALGORITHMS))})")
    return name


def hash_password(password: str, algorithm: str | None = None, salt: bytes | None = None) -> str:
    """The broker's stored form of ``password``: base64(salt + digest(salt + utf8(password)))."""
    fn = ALGORITHMS[algorithm_name(algorithm)]
    salt = os.urandom(4) if salt is None else salt
    return base64.b64encode(salt + fn(salt + password.encode("utf-8")).digest()).decode("ascii")


def check_password(password: str, stored: str | None, algorithm: str | None = None) -> bool:
    """True when ``stored`` (the broker's password_hash) is the hash of ``password``."""
    if not stored:
        return False
    try:
        raw = base64.b64decode(stored, validate=True)
        fn = ALGORITHMS[algorithm_name(algorithm)]
    except (ValueError, InputError):
        return False
    if len(raw) != 4 + fn().digest_size:
        return False
    return hmac.compare_digest(raw, base64.b64decode(hash_password(password, algorithm, raw[:4])))


def hash_problem(stored: str, algorithm: str | None = None) -> str | None:
    """Why the broker would refuse ``stored`` as a password hash of ``algorithm``, or None.

    The broker stores base64(4-byte salt + digest) and answers 400 ``not_base64`` to anything
    else; a hash of the wrong length is taken and no password matches it. Never quotes the value.
    """
    if stored == "":
        return None  # the broker's "no password": only other means of authentication
    try:
        raw = base64.b64decode(stored, validate=True)
    except ValueError:
        return "is not base64 (the broker answers 400 not_base64)"
    size = 4 + ALGORITHMS[algorithm_name(algorithm)]().digest_size
    if len(raw) != size:
        name = algorithm_name(algorithm).rsplit("_", 1)[-1]
        return (f"decodes to {len(raw)} bytes, not the {size} of a 4-byte salt and a {name} digest: no password "
                "would match it (check hashing_algorithm)")
    return None


def _register(value: str) -> None:
    from ..broker.settings import register_secret

    register_secret(value)
    try:
        parts = urlsplit(value)
        if parts.password:
            register_secret(parts.password)
    except ValueError:
        pass


# ---------------------------------------------------------------------- references
@dataclass(frozen=True)
class Ref:
    """Where a secret comes from: ``("env", NAME)`` or ``("file", ABSOLUTE_PATH)``; never the value."""

    source: str
    name: str

    def to_dict(self) -> dict:
        return {self.source: self.name}

    def describe(self) -> str:
        return f"environment variable {self.name}" if self.source == "env" else f"file {self.name}"


def parse_ref(value: Any, base_dir: str = "") -> Ref | None:
    """A ``{env: NAME}`` / ``{file: PATH}`` mapping as a Ref (relative files: from ``base_dir``); else None."""
    if isinstance(value, Mapping) and len(value) == 1:
        (key, name), = value.items()
        if key == "env" and isinstance(name, str) and name:
            return Ref("env", name)
        if key == "file" and isinstance(name, str) and name:
            path = name if os.path.isabs(name) else os.path.normpath(os.path.join(base_dir or "", name))
            return Ref("file", path)
    return None


def resolve(ref: Ref, environ: Mapping[str, str]) -> str:
    """The secret a reference points at. Raises InputError naming the variable or file (never a value)."""
    if ref.source == "env":
        value = environ.get(ref.name)
        if value is None or value == "":
            raise InputError(f"environment variable {ref.name} is not set (a secret of the topology files)",
                             hint=f"export {ref.name}=... before running topoform")
    else:
        try:
            with open(ref.name, "rb") as fh:
                data = fh.read(65537)
        except OSError as exc:
            raise InputError(f"cannot read secret file {ref.name}: {exc.strerror or type(exc).__name__}") from None
        if len(data) > 65536:
            raise InputError(f"secret file {ref.name} is larger than 64 KiB")
        try:
            value = data.decode("utf-8")
        except UnicodeDecodeError:
            raise InputError(f"secret file {ref.name} is not UTF-8 text") from None
        value = value[:-2] if value.endswith("\r\n") else value[:-1] if value.endswith("\n") else value
        if not value:
            raise InputError(f"secret file {ref.name} is empty")
    _register(value)
    return value


@dataclass(frozen=True)
class Secret:
    """A secret field of one object. ``ref``: where the files take it from; ``plain``: the resolved
    password or URI (files side); ``hash``/``algorithm``: a password hash (files or broker side).
    ``repr`` never shows a value."""

    ref: Ref | None = None
    plain: Any = field(default=None, repr=False)  # str, or a list of URIs
    hash: str | None = field(default=None, repr=False)
    algorithm: str | None = None
    given_hash: bool = False  # the files give password_hash themselves

    def to_dict(self) -> Any:
        """What a plan may say about it: the reference, else that a value is set."""
        if self.ref is not None:
            return self.ref.to_dict()
        return "(set)"


def has_credentials(uri: Any) -> bool:
    """True when a URI (or any URI of a list) carries a password."""
    uris = uri if isinstance(uri, (list, tuple)) else [uri]
    for u in uris:
        if isinstance(u, str):
            try:
                parts = urlsplit(u)
            except ValueError:
                continue
            if parts.password:
                return True
    return False


def redact_uri(uri: Any) -> Any:
    """A URI (or list) with the password hidden: ``amqp://user:***@host``."""
    if isinstance(uri, (list, tuple)):
        return [redact_uri(u) for u in uri]
    if not isinstance(uri, str):
        return uri
    try:
        parts = urlsplit(uri)
    except ValueError:
        return "***"
    if parts.password is None:
        return uri
    netloc = parts.netloc
    userinfo, _, host = netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return parts._replace(netloc=f"{user}:***@{host}").geturl()
