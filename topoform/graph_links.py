"""The config kinds in ``topoform graph``: users and their permissions, federation, shovels.

Called by :func:`topoform.graph.build_diagram` with the files' config objects
(:class:`topoform.config.model.ConfigObject`, read duck-typed: ``kind``, ``vhost``,
``name``, ``fields``, ``secrets``):

* a **user** is a node outside the vhosts (its tags as the second line); each
  **permission** an arrow from the user to the vhost it applies to (a "vhost" node in the
  vhost's group), labelled with the configure / write / read patterns (``(none)`` for an
  empty one); each **topic permission** a dashed arrow to the exchange, with its patterns;
* a **federation upstream** is an arrow from where the messages come from (a remote broker,
  or a vhost of this broker for a host-less ``amqp://`` / ``amqp:///VHOST``) to the
  exchanges and queues a policy federates from it (``federation-upstream``, or
  ``federation-upstream-set`` naming a set that holds it, or ``all``), else to its vhost;
* a **shovel** is an arrow from its source (the ``src-queue`` / ``src-exchange`` when it is
  on this broker, else the vhost or the remote broker) to its destination, alike.

URIs are never drawn whole: a remote broker shows ``scheme://host:port`` only (no user,
password, path or query), a URI given by reference shows the reference (``env:NAME``,
``file:NAME``), never its value. Pure: no I/O.
"""
from __future__ import annotations

import os
from typing import Any, Callable
from urllib.parse import unquote, urlsplit

__all__ = ["add_links", "uri_endpoint"]


def _pattern(value: Any) -> str:
    return value if isinstance(value, str) and value != "" else "(none)"


def uri_endpoint(uri: Any) -> tuple[str, str] | None:
    """Where a URI points, credential-free: ``("vhost", NAME)`` for this broker (no host), else
    ``("remote", "scheme://host[:port]")``; ``None`` when it cannot be read (drawn as ``(uri)``)."""
    if not isinstance(uri, str):
        return None
    try:
        parts = urlsplit(uri)
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not parts.scheme:
        return None
    if not host:
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        return ("vhost", unquote(path) if path else "/")
    host = f"[{host}]" if ":" in host else host
    return ("remote", f"{parts.scheme}://{host}" + (f":{port}" if port else ""))


def _secret_label(secret: Any) -> str:
    ref = getattr(secret, "ref", None)
    if ref is not None:
        name = ref.name if ref.source == "env" else os.path.basename(ref.name)
        return f"{ref.source}:{name}"
    return "(uri set)"


def _user_of(topic_permission: Any) -> str:
    user = topic_permission.fields.get("user")
    return user if isinstance(user, str) else topic_permission.name.rpartition("@")[0]


def _endpoints(obj: Any, field_name: str) -> list[tuple[str, str]]:
    """Every place a URI field points at: [("vhost", NAME) | ("remote", LABEL)]."""
    secret = (getattr(obj, "secrets", None) or {}).get(field_name)
    if secret is not None:
        return [("remote", _secret_label(secret))]
    value = obj.fields.get(field_name)
    if value is None:
        return [("vhost", obj.vhost)] if obj.kind == "shovel" else []  # a shovel's default: its own vhost
    uris = list(value) if isinstance(value, (list, tuple)) else [value]
    out = []
    for uri in uris:
        point = uri_endpoint(uri)
        out.append(point if point is not None else ("remote", "(uri)"))
    return list(dict.fromkeys(out))


def add_links(topology: Any, extras: Any, names: list[str], filtered: bool, add_node: Callable,
              add_edge: Callable, effective_policy: Callable) -> None:
    """Add the users', federation's and shovels' nodes and edges (see the module doc)."""
    from .graph import Edge

    drawn = set(names)
    objects = sorted((o for o in extras.config if hasattr(o, "kind") and hasattr(o, "fields")),
                     key=lambda o: (o.kind, o.vhost, o.name, tuple(getattr(o, "ident", ()) or ())))

    def vhost_node(vhost: str) -> str:
        return add_node("vhost", vhost, vhost)

    def endpoint(point: tuple[str, str], queue: Any = None, exchange: Any = None) -> str:
        where, label = point
        if where == "vhost":
            if label in drawn and isinstance(queue, str) and queue:
                return add_node("queue", label, queue, "", declared=topology.queue(label, queue) is not None)
            if label in drawn and isinstance(exchange, str) and exchange:
                return add_node("exchange", label, exchange, "",
                                declared=topology.exchange(label, exchange) is not None)
            return vhost_node(label)
        return add_node("remote", None, label, "broker")

    if extras.users:
        users = {o.name: o for o in objects if o.kind == "user"}
        perms = [o for o in objects if o.kind == "permission" and o.vhost in drawn]
        topic = [o for o in objects if o.kind == "topic_permission" and o.vhost in drawn]
        wanted = {o.name for o in perms} | {_user_of(o) for o in topic}
        if not filtered:
            wanted |= set(users)
        user_ids = {}
        for name in sorted(wanted):
            u = users.get(name)
            tags = u.fields.get("tags") if u is not None else None
            detail = ", ".join(str(t) for t in tags) if isinstance(tags, (list, tuple)) else ""
            user_ids[name] = add_node("user", None, name, detail, declared=u is not None)
        for p in perms:
            label = "\n".join(f"{k}: {_pattern(p.fields.get(k))}" for k in ("configure", "write", "read"))
            add_edge(Edge(user_ids[p.name], vhost_node(p.vhost), "permission", label))
        for t in topic:
            exchange = t.fields.get("exchange")
            if not isinstance(exchange, str):
                continue
            x = topology.exchange(t.vhost, exchange)
            target = add_node("exchange", t.vhost, exchange) if x is not None else \
                add_node("exchange", t.vhost, exchange, "", declared=False)
            label = "topic " + "\n".join(f"{k}: {_pattern(t.fields.get(k))}" for k in ("write", "read"))
            add_edge(Edge(user_ids[_user_of(t)], target, "topic-permission", label))

    if not extras.links:
        return
    sets: dict[tuple, set] = {}
    for o in objects:
        if o.kind == "federation_upstream_set":
            members = o.fields.get("upstreams") or ()
            sets[(o.vhost, o.name)] = {m.get("upstream") for m in members if hasattr(m, "get")}
    for up in (o for o in objects if o.kind == "federation_upstream" and o.vhost in drawn):
        targets = []
        for kind, bucket in (("exchange", topology.exchanges), ("queue", topology.queues)):
            for obj in sorted((r for r in bucket.values() if r.vhost == up.vhost), key=lambda r: r.name):
                policy = effective_policy(topology, up.vhost, kind, obj.name)
                if policy is None:
                    continue
                single = policy.definition.get("federation-upstream")
                group = policy.definition.get("federation-upstream-set")
                if single == up.name or group == "all" or \
                        (isinstance(group, str) and up.name in sets.get((up.vhost, group), ())):
                    targets.append(add_node(kind, up.vhost, obj.name))
        for point in _endpoints(up, "uri") or [("remote", "(uri)")]:
            source = endpoint(point)
            for target in targets or [vhost_node(up.vhost)]:
                add_edge(Edge(source, target, "federation", f"federation {up.name}"))
    for sh in (o for o in objects if o.kind == "shovel" and o.vhost in drawn):
        f = sh.fields
        ends = {}
        for side in ("src", "dest"):
            ends[side] = [(p[0], endpoint(p, f.get(f"{side}-queue"), f.get(f"{side}-exchange")))
                          for p in _endpoints(sh, f"{side}-uri")]
        for src_where, source in ends["src"]:
            for dest_where, dest in ends["dest"]:
                label = [f"shovel {sh.name}"]
                for side, where in (("src", src_where), ("dest", dest_where)):
                    for what in ("queue", "exchange"):
                        value = f.get(f"{side}-{what}")
                        if where == "remote" and isinstance(value, str) and value:
                            label.append(f"{side}-{what}: {value}")
                add_edge(Edge(source, dest, "shovel", "\n".join(label)))
