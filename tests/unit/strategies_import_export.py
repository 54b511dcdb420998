"""Hypothesis strategies for valid topologies (shared by test_dump*, test_export*, test_graph*).

Generated topologies satisfy the loader's rules (schema types of known arguments, no
dangling references, no reserved names), so ``load_text(dump_topology(t))`` must give
``t`` back exactly.
"""
from __future__ import annotations

from hypothesis import strategies as st

from topoform.model import Args, Binding, Exchange, Policy, Queue, RouteTest, Topology, Vhost
from topoform.patterns import pcre_invalid

# Names: any printable text the broker accepts (no line breaks, not amq.*, not empty).
_alphabet = st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"))
names = st.text(_alphabet, min_size=1, max_size=12).filter(
    lambda s: not s.startswith("amq.") and len(s.encode()) <= 255)
tricky_names = st.sampled_from(["/", "404", "on", "yes", "null", "~", "- x", "a: b", "#", "*", "'q'", '"q"',
                                "x #y", "1.5", "0o17", "0x1F", "1e5", ".inf", "true", "@at", "%p", "&a", "!t",
                                "[l]", "{m}", "é", "日本", " sp", "tab\there"])
any_name = st.one_of(names, tricky_names)

scalars = st.one_of(
    st.integers(min_value=-2**63, max_value=2**63 - 1),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
    # the management API shows a void exactly as the string "undefined" and the reader takes
    # it for a void (validate warns about the literal string: ambiguous-undefined)
    st.text(_alphabet, max_size=10).filter(lambda s: s != "undefined"),
    tricky_names,
    st.none(),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3),
    st.dictionaries(st.text(_alphabet, min_size=1, max_size=6).filter(lambda k: not k.startswith("x-")),
                    inner, max_size=3)), max_leaves=6)
# custom argument keys only: known x- keys have schema-mandated types
custom_args = st.dictionaries(st.from_regex(r"\Ax-custom-[a-z0-9]{1,6}\Z"), values, max_size=4).map(Args)


@st.composite
def topologies(draw, vhost_names=None) -> Topology:
    resources = []
    vhosts = draw(st.lists(any_name, min_size=1, max_size=2, unique=True)) if vhost_names is None else vhost_names
    tests = []
    for v in vhosts:
        dqt = draw(st.none() | st.sampled_from(["classic", "quorum"]))
        resources.append(Vhost(v, description=draw(st.none() | st.text(_alphabet, max_size=8)),
                               tags=draw(st.none() | st.lists(names, max_size=2).map(tuple)),
                               default_queue_type=dqt))
        ex_names = draw(st.lists(any_name, max_size=4, unique=True))
        q_names = draw(st.lists(any_name, max_size=5, unique=True))
        exchanges = []
        for name in ex_names:
            args = dict(draw(custom_args))
            if ex_names and draw(st.booleans()):
                args["alternate-exchange"] = draw(st.sampled_from(ex_names))
            x = Exchange(v, name, draw(st.sampled_from(["direct", "fanout", "topic", "headers"])),
                         draw(st.booleans()), draw(st.booleans()), draw(st.booleans()), Args(args))
            exchanges.append(x)
        resources += exchanges
        for name in q_names:
            args = dict(draw(custom_args))
            kind = draw(st.sampled_from(["classic", "quorum", None]))
            if kind is None and dqt == "quorum":
                kind = "classic"  # else the vhost default makes it a quorum queue (rules differ)
            if kind:
                args["x-queue-type"] = kind
            if draw(st.booleans()):
                args["x-message-ttl"] = draw(st.integers(0, 10**9))
            if ex_names and draw(st.booleans()):
                args["x-dead-letter-exchange"] = draw(st.sampled_from(ex_names))
            durable = True if kind == "quorum" else draw(st.booleans())
            flags = (False, False) if kind == "quorum" else (draw(st.booleans()), draw(st.booleans()))
            resources.append(Queue(v, name, durable, flags[0], flags[1], Args(args)))
        if ex_names:
            for _ in range(draw(st.integers(0, 6))):
                src = draw(st.sampled_from(ex_names))
                if q_names and draw(st.booleans()):
                    dst, dtype = draw(st.sampled_from(q_names)), "queue"
                else:
                    dst, dtype = draw(st.sampled_from(ex_names)), "exchange"
                bargs = dict(draw(custom_args))
                if draw(st.booleans()):
                    bargs["x-match"] = draw(st.sampled_from(["all", "any"]))
                resources.append(Binding(v, src, dst, dtype, draw(st.text(_alphabet, max_size=8) | tricky_names),
                                         Args(bargs)))
            if q_names and draw(st.booleans()):
                tests.append(RouteTest(v, draw(st.sampled_from(ex_names)), draw(st.text(_alphabet, max_size=5)),
                                       expect=tuple(draw(st.lists(st.sampled_from(q_names), max_size=2)))))
        for name in draw(st.lists(names, max_size=2, unique=True)):
            definition = draw(st.sampled_from([{"message-ttl": 1000}, {"max-length": 5, "overflow": "drop-head"},
                                               {"dead-letter-exchange": "dlx"}, {"ha-params": [1, 2]}]))
            # a pattern the broker accepts (validate calls one that PCRE refuses too, such as "^?", an error)
            pattern = st.text(_alphabet, max_size=6).map(lambda s: "^" + s.replace("\\", "")).filter(
                lambda p: pcre_invalid(p) is None)
            resources.append(Policy(v, name, draw(pattern),
                                    draw(st.sampled_from(["all", "queues", "exchanges"])),
                                    draw(st.integers(-5, 100)), Args(definition)))
    return Topology.build(resources, tests=tests)
