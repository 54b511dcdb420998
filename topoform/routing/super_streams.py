"""Super streams as the router (and the graph) see them: an exchange, its partition streams, their bindings.

A super stream in the files (``vhosts.V.super_streams.NAME``, a config object of kind
``super_stream``, see :mod:`topoform.config`) is what ``rabbitmq-streams add_super_stream``
makes of it on the broker, and what ``topoform apply`` creates:

* a durable ``direct`` exchange ``NAME`` with the argument ``x-super-stream: true``;
* one durable stream per partition: with ``partitions: N`` the streams ``NAME-0`` ..
  ``NAME-(N-1)`` bound with the keys ``"0"`` .. ``"N-1"``; with ``binding_keys: [eu, us]``
  the streams ``NAME-eu``, ``NAME-us`` bound with the keys ``eu``, ``us``;
* each binding carries ``x-stream-partition-order`` (0, 1, ...).

Published over AMQP 0-9-1, a message goes to the super stream's exchange and is routed as
by any direct exchange: to the partition whose binding key equals the routing key
(unroutable otherwise). The hash and key routing strategies of the stream protocol are
chosen by the publishing *client*, not by the broker, so the simulator does not model them.

:func:`with_super_streams` adds these objects to a :class:`~topoform.model.Topology`;
objects the files declare themselves win. Pure: imports only ``model``.
"""
from __future__ import annotations

from typing import Any, Iterable

from ..model import Args, Binding, Exchange, Queue, Topology

__all__ = ["partitions", "super_stream_resources", "with_super_streams"]


def partitions(name: str, fields: Any) -> list[tuple[str, str]]:
    """``(binding key, partition stream name)`` of a super stream, in partition order."""
    if "binding_keys" in fields:
        keys = [str(k) for k in fields["binding_keys"]]
    else:
        count = fields.get("partitions", 0)
        keys = [str(i) for i in range(count if isinstance(count, int) and not isinstance(count, bool) else 0)]
    return [(key, f"{name}-{key}") for key in keys]


def super_stream_resources(obj: Any) -> list:
    """The exchange, streams and bindings one ``super_stream`` config object stands for."""
    args = dict(obj.fields.get("arguments") or {})
    args.pop("x-queue-type", None)
    out: list = [Exchange(obj.vhost, obj.name, "direct", durable=True, arguments=Args({"x-super-stream": True}))]
    for order, (key, stream) in enumerate(partitions(obj.name, obj.fields)):
        out.append(Queue(obj.vhost, stream, durable=True, arguments=Args({**args, "x-queue-type": "stream"})))
        out.append(Binding(obj.vhost, obj.name, stream, "queue", key,
                           Args({"x-stream-partition-order": order})))
    return out


def _objects(config: Any) -> Iterable:
    if config is None:
        return ()
    objects = getattr(config, "objects", config)
    values = objects.values() if hasattr(objects, "values") else objects
    return sorted((o for o in values if getattr(o, "kind", None) == "super_stream"), key=lambda o: (o.vhost, o.name))


def with_super_streams(topology: Topology, config: Any) -> Topology:
    """``topology`` plus the exchanges, streams and bindings of ``config``'s super streams.

    ``config`` is a :class:`topoform.config.load.ConfigState` (or a mapping or list of config
    objects); ``None`` or no super streams returns ``topology`` itself.
    """
    streams = list(_objects(config))
    if not streams:
        return topology
    exchanges, queues, bindings = dict(topology.exchanges), dict(topology.queues), set(topology.bindings)
    for obj in streams:
        for r in super_stream_resources(obj):
            if r.kind == "exchange":
                exchanges.setdefault(r.key, r)
            elif r.kind == "queue":
                queues.setdefault(r.key, r)
            else:
                bindings.add(r)
    return Topology(vhosts=dict(topology.vhosts), exchanges=exchanges, queues=queues,
                    bindings=frozenset(bindings), policies=dict(topology.policies), tests=topology.tests)
