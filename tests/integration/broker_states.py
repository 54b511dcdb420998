"""Broker states for the import/export round-trip tests.

* :func:`example_states` - every vhost of every example topology, moved into the test's
  vhost (exclusive queues and bindings to them left out: consumers create those).
* :func:`randomized_topology` - 200 queues with arguments of every type the broker
  stores, exchanges of every type with alternate exchanges and custom arguments,
  exchange-to-exchange bindings, headers bindings with typed arguments, policies.
* :func:`vhost_definitions` - a topology as a single-vhost definitions document for
  ``POST /api/definitions/V`` (written here, independently of ``topoform.export``).
"""
from __future__ import annotations

import random
from pathlib import Path

from helpers import EXAMPLES
from topoform.model import Args, Binding, Exchange, Policy, Queue, Topology, Vhost, thaw


def example_cases() -> list[tuple[str, str]]:
    """(example file name, vhost) for every vhost of every example topology."""
    from topoform.load import load_topology

    cases = []
    for path in sorted(EXAMPLES.glob("*.y*ml")):
        result = load_topology([str(path)])
        for vhost in result.topology.vhost_names():
            cases.append((path.name, vhost))
    return cases


def example_state(filename: str, example_vhost: str, vhost: str) -> Topology:
    """One example vhost's broker objects, renamed into ``vhost``."""
    from topoform.load import load_topology

    t = load_topology([str(Path(EXAMPLES, filename))]).topology.in_vhosts([example_vhost])
    exclusive = {q.name for q in t.queues.values() if q.exclusive}
    out = [Vhost(vhost)]
    for r in t.resources():
        if isinstance(r, Vhost):
            continue
        if isinstance(r, Queue) and r.exclusive:
            continue
        if isinstance(r, Binding) and r.destination_type == "queue" and r.destination in exclusive:
            continue
        out.append(r.replace(vhost=vhost))
    return Topology.build(out)


def vhost_definitions(t: Topology, vhost: str) -> dict:
    return {
        "exchanges": [{"name": x.name, "type": x.type, "durable": x.durable, "auto_delete": x.auto_delete,
                       "internal": x.internal, "arguments": thaw(x.arguments)}
                      for x in t.exchanges.values() if x.vhost == vhost],
        "queues": [{"name": q.name, "durable": q.durable, "auto_delete": q.auto_delete,
                    "arguments": thaw(q.arguments)} for q in t.queues.values() if q.vhost == vhost],
        "bindings": [{"source": b.source, "destination": b.destination, "destination_type": b.destination_type,
                      "routing_key": b.routing_key, "arguments": thaw(b.arguments)}
                     for b in t.bindings if b.vhost == vhost],
        "policies": [{"vhost": vhost, "name": p.name, "pattern": p.pattern, "apply-to": p.apply_to,
                      "priority": p.priority, "definition": thaw(p.definition)}
                     for p in t.policies.values() if p.vhost == vhost],
    }


# Names a YAML writer can get wrong, and names with characters URLs and labels must escape.
_TRICKY = ["404", "yes", "on", "null", "~", "1.5", "0x1F", "1e5", "true", "- dash", "a: b", "#hash", "*star",
           "'single'", '"double"', "spa ce", "slash/and%25", "é-ü-日本", "tab\tname", "[x]", "{y}", "&amp", "@at",
           "!bang", "%pct", "back\\slash", "ends.", ".starts", "UPPER", "a" * 200]


def _custom_value(rng: random.Random, depth: int = 0):
    kind = rng.choice(["int", "negint", "bigint", "float", "wholefloat", "bool", "numstr", "boolstr", "emptystr",
                       "str", "list", "table"] if depth < 2 else ["int", "float", "bool", "str", "numstr"])
    if kind == "int":
        return rng.randint(0, 10**6)
    if kind == "negint":
        return -rng.randint(1, 10**6)
    if kind == "bigint":
        return rng.choice([2**31, 2**40, 2**63 - 1, -(2**63)])
    if kind == "float":
        return rng.choice([0.5, 1.25, -3.75, 1e20, 2.5e-7])
    if kind == "wholefloat":
        return 2.0
    if kind == "bool":
        return rng.choice([True, False])
    if kind == "numstr":
        return rng.choice(["60000", "1.5", "-1", "0x10", "1e3"])
    if kind == "boolstr":
        return rng.choice(["true", "yes", "off", "null"])
    if kind == "emptystr":
        return ""
    if kind == "str":
        return rng.choice(["plain", "with space", "a: b", "#x", "日本"])
    if kind == "list":
        return [_custom_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {f"k{i}": _custom_value(rng, depth + 1) for i in range(rng.randint(0, 3))}


def _custom_args(rng: random.Random, n: int) -> dict:
    return {f"x-custom-{i}": _custom_value(rng) for i in range(n)}


def randomized_topology(vhost: str, seed: int = 7, queues: int = 200) -> Topology:
    rng = random.Random(seed)
    out: list = [Vhost(vhost)]
    types = ["direct", "fanout", "topic", "headers"]
    exchanges: list[Exchange] = []
    for i in range(32):
        name = f"ex-{i}" if i % 5 else f"ex-{i}-{_TRICKY[i % len(_TRICKY)]}"
        args = _custom_args(rng, rng.randint(0, 2))
        exchanges.append(Exchange(vhost, name, types[i % 4], durable=rng.random() < 0.7,
                                  auto_delete=False, internal=i % 7 == 3, arguments=Args(args)))
    # alternate exchanges point at other exchanges (and one at an exchange that does not exist)
    for i in (0, 5, 10, 17):
        x = exchanges[i]
        target = "no-such-exchange" if i == 17 else exchanges[(i + 1) % len(exchanges)].name
        exchanges[i] = x.replace(arguments=Args({**thaw(x.arguments), "alternate-exchange": target}))
    out += exchanges
    by_type = {t: [x for x in exchanges if x.type == t] for t in types}

    queue_objs: list[Queue] = []
    for i in range(queues):
        name = f"q-{i:03d}" if i % 4 else f"q-{i:03d}-{_TRICKY[i % len(_TRICKY)]}"
        if i < len(_TRICKY):
            name = _TRICKY[i] if i % 2 else name
        kind = "quorum" if i % 10 == 0 else "classic"
        args: dict = {}
        if kind == "quorum":
            args["x-queue-type"] = "quorum"
            args["x-delivery-limit"] = rng.randint(1, 20)
            if rng.random() < 0.5:
                args["x-single-active-consumer"] = rng.choice([True, False])
            if rng.random() < 0.5:
                args["x-dead-letter-exchange"] = rng.choice(exchanges).name
            q = Queue(vhost, name, durable=True, arguments=Args(args))
        else:
            if i % 10 == 5:
                args["x-queue-type"] = "classic"  # explicit classic stays explicit
            if rng.random() < 0.4:
                args["x-message-ttl"] = rng.randint(0, 10**7)
            if rng.random() < 0.2:
                args["x-expires"] = 3_600_000 + rng.randint(0, 10**6)
            if rng.random() < 0.3:
                args["x-max-length"] = rng.randint(0, 10**5)
            if rng.random() < 0.2:
                args["x-max-length-bytes"] = rng.randint(0, 10**9)
            if rng.random() < 0.2:
                args["x-overflow"] = rng.choice(["drop-head", "reject-publish", "reject-publish-dlx"])
            if rng.random() < 0.3:
                args["x-dead-letter-exchange"] = rng.choice(exchanges + [Exchange(vhost, "")]).name
                if rng.random() < 0.5:
                    args["x-dead-letter-routing-key"] = rng.choice(["dead", "123", "yes", ""])
            if rng.random() < 0.1:
                args["x-max-priority"] = rng.randint(1, 255)
            if rng.random() < 0.1:
                args["x-queue-mode"] = rng.choice(["default", "lazy"])
            if rng.random() < 0.1:
                args["x-single-active-consumer"] = rng.choice([True, False])
            args.update(_custom_args(rng, rng.randint(0, 3)))
            q = Queue(vhost, name, durable=rng.random() < 0.6, auto_delete=rng.random() < 0.1, arguments=Args(args))
        queue_objs.append(q)
    out += queue_objs

    bindings: set[Binding] = set()
    for q in queue_objs:
        for _ in range(rng.randint(0, 3)):
            kind = rng.choice(types)
            x = rng.choice(by_type[kind])
            if kind == "headers":
                bargs = {"x-match": rng.choice(["all", "any"]), "format": rng.choice(["pdf", "png", "60000"]),
                         "n": rng.choice([1, 2**40, -1]), "flag": rng.choice([True, False]),
                         "ratio": rng.choice([0.5, 2.0])}
                if rng.random() < 0.3:
                    bargs["nested"] = {"a": 1, "b": ["x", 2]}
                if rng.random() < 0.3:
                    bargs["list"] = [1, "1", True]
                bindings.add(Binding(vhost, x.name, q.name, "queue", rng.choice(["", "ignored-key"]), Args(bargs)))
            elif kind == "topic":
                key = rng.choice(["*.orange.*", "lazy.#", "#", "a.*.b", "", "yes", "404", "a b.c"])
                bindings.add(Binding(vhost, x.name, q.name, "queue", key))
            elif kind == "fanout":
                bindings.add(Binding(vhost, x.name, q.name, "queue", ""))
            else:
                key = rng.choice([q.name, "error", "info", "", "1.5"])
                args = Args({"x-custom-b": rng.choice([1, "1", True])}) if rng.random() < 0.2 else Args()
                bindings.add(Binding(vhost, x.name, q.name, "queue", key, args))
    for _ in range(40):  # exchange-to-exchange
        src, dst = rng.sample(exchanges, 2)
        key = "" if src.type in ("fanout", "headers") else rng.choice(["route.#", "a.b", "x"])
        args = Args({"x-match": "any", "kind": "e2e", "n": 3}) if src.type == "headers" else Args()
        bindings.add(Binding(vhost, src.name, dst.name, "exchange", key, args))
    out += sorted(bindings, key=lambda b: b.key)

    policy_defs = [
        ("queues", {"message-ttl": 600000}), ("queues", {"max-length": 1000, "overflow": "drop-head"}),
        ("queues", {"dead-letter-exchange": exchanges[1].name, "dead-letter-routing-key": "dead"}),
        ("queues", {"expires": 86_400_000}), ("exchanges", {"alternate-exchange": exchanges[2].name}),
        ("all", {"max-length-bytes": 10**8}), ("queues", {"queue-mode": "lazy"}),
        ("queues", {"delivery-limit": 7}), ("queues", {"max-in-memory-length": 10}),
    ]
    for i, (apply_to, definition) in enumerate(policy_defs):
        out.append(Policy(vhost, f"policy-{i}" if i != 3 else "404", rf"^q-{i}\d", apply_to, i * 3 - 2,
                          Args(definition)))
    return Topology.build(out)
