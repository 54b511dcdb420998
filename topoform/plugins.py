"""Which broker plugin a topology feature needs: one table, read by ``validate`` and ``apply``.

``validate`` (``load.py``) names the plugin of every policy key and exchange type listed
here as a warning (a broker without the plugin refuses the policy with 400 "not
recognised policy settings", or closes the connection at the exchange declare).
``apply`` (``apply/preflight.py``) checks the broker's enabled plugins before it changes
anything and stops naming the missing plugin.

How a broker's plugins are known, best first (observed on 3.10.8, 4.0.5 and 4.3.6):

* ``GET /api/nodes?columns=name,enabled_plugins``: every node's enabled plugins; needs the
  ``monitoring`` or ``administrator`` tag (others get 401 "Not monitor user").
* ``GET /api/overview`` ``exchange_types``: readable by every management user; a plugin
  that registers an exchange type (federation registers ``x-federation-upstream``) is
  enabled exactly when its type is listed.

Pure: imports nothing from topoform.
"""
from __future__ import annotations

from typing import Iterable, Mapping

__all__ = ["POLICY_KEY_PLUGINS", "EXCHANGE_TYPE_PLUGINS", "PLUGIN_EXCHANGE_MARKERS", "policy_key_plugin",
           "exchange_type_plugin", "enabled_from_nodes", "enabled_from_exchange_types"]

# policy definition key -> the plugin that makes the broker accept it
POLICY_KEY_PLUGINS: Mapping[str, str] = {
    "federation-upstream": "rabbitmq_federation",
    "federation-upstream-set": "rabbitmq_federation",
}

# exchange type -> the plugin that provides it (built-in types are not listed; x-local-random
# is built in from 4.0 and x-modulus-hash from 4.3, so they are checked against the broker's
# own exchange_types, never against this table)
EXCHANGE_TYPE_PLUGINS: Mapping[str, str] = {
    "x-delayed-message": "rabbitmq_delayed_message_exchange",
    "x-consistent-hash": "rabbitmq_consistent_hash_exchange",
    "x-random": "rabbitmq_random_exchange",
    "x-recent-history": "rabbitmq_recent_history_exchange",
    "x-jms-topic": "rabbitmq_jms_topic_exchange",
    "x-federation-upstream": "rabbitmq_federation",
    "x-modulus-hash": "rabbitmq_sharding",  # built in from 4.3
}

# plugin -> an exchange type it registers: its presence in GET /api/overview exchange_types
# proves the plugin is enabled (for users who may not read GET /api/nodes)
PLUGIN_EXCHANGE_MARKERS: Mapping[str, str] = {plugin: xtype for xtype, plugin in EXCHANGE_TYPE_PLUGINS.items()
                                              if xtype != "x-modulus-hash"}  # built in on 4.3: proves nothing


def policy_key_plugin(key: str) -> str | None:
    """The plugin a policy definition key needs, or None (core key, or unknown)."""
    return POLICY_KEY_PLUGINS.get(key)


def exchange_type_plugin(xtype: str) -> str | None:
    """The plugin an exchange type needs, or None (built in, or unknown)."""
    return EXCHANGE_TYPE_PLUGINS.get(xtype)


def enabled_from_nodes(rows: Iterable[Mapping]) -> set[str] | None:
    """Plugins enabled on every node (a policy or exchange works only where its plugin runs)."""
    sets = [set(r.get("enabled_plugins") or ()) for r in rows if isinstance(r, Mapping)]
    if not sets:
        return None
    common = sets[0]
    for s in sets[1:]:
        common &= s
    return common


def enabled_from_exchange_types(exchange_types: Iterable[Mapping]) -> set[str]:
    """The plugins whose marker exchange type the broker lists (GET /api/overview ``exchange_types``)."""
    names = {str(x.get("name")) for x in exchange_types if isinstance(x, Mapping)}
    return {plugin for plugin, marker in PLUGIN_EXCHANGE_MARKERS.items() if marker in names}
