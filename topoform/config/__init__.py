"""The rest of a broker's configuration (SPEC section 8): users, permissions, topic permissions,
vhost and user limits, operator policies, global parameters, federation upstreams and sets,
shovels and super streams.

One row per kind in :mod:`.kinds`; :mod:`.load` (files), :mod:`.live` (broker, exports),
:mod:`.plan` (rules), :mod:`.apply` (HTTP calls), :mod:`.export` / :mod:`.dump`
(definitions, import) and :mod:`.secrets` (references, hashing). :mod:`.hook` holds the
few calls the core pipeline makes. See docs/configuration.md.
"""
