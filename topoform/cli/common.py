"""Helpers shared by the command modules: files, loading, broker settings, JSON output."""
from __future__ import annotations

import json
from typing import Any

from ..broker.settings import DEFAULT_URL, BrokerSettings
from ..errors import InputError
from .env import Environment


def load_files(args, env: Environment, *, show_warnings: bool = True):
    """Discover and load the topology files named by ``-f`` (or the defaults).

    Returns the :class:`topoform.load.LoadResult`. Raises InputError (every error
    finding, each as ``PATH:LINE:COL: message``) when the files are invalid; warnings
    are printed to stderr and do not fail.
    """
    from ..load import discover_files, load_topology

    paths = discover_files(args.files or [], env.environ, env.cwd)
    result = load_topology(paths)
    if show_warnings:
        for finding in result.warnings:
            env.err(finding.format())
    if result.errors:
        n = len(result.errors)
        raise InputError(f"{n} error{'s' if n != 1 else ''} in topology files", findings=result.errors)
    return result


def broker_settings(args, env: Environment) -> BrokerSettings:
    """Connection settings from flags, then environment variables, then defaults (SPEC section 3)."""
    url = getattr(args, "url", None) or env.environ.get("TOPOFORM_URL") or DEFAULT_URL
    mgmt = getattr(args, "management_url", None) or env.environ.get("TOPOFORM_MANAGEMENT_URL") or None
    ca = getattr(args, "ca_cert", None) or env.environ.get("TOPOFORM_CA_CERT") or None
    timeout = getattr(args, "timeout", None) or float(env.environ.get("TOPOFORM_TIMEOUT") or 30)
    return BrokerSettings(url=url, management_url=mgmt, ca_cert=ca, timeout=timeout)


def dump_json(data: Any) -> str:
    """Sorted, indented JSON: the one format every ``--json`` output uses."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False)
