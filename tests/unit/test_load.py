"""The loader: file discovery, includes, the model mapping, conflicts, positions and checks."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from topoform.errors import InputError, Position
from topoform.load import LoadResult, discover_files, load_text as _load_text, load_topology
from topoform.model import Args, Binding, Exchange, Policy, Queue, RouteTest, Vhost



def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load_text(text: str, path: str = "<string>", **kw) -> LoadResult:
    return _load_text(textwrap.dedent(text), path, **kw)


def lines(result: LoadResult) -> list[str]:
    return [f.format() for f in result.findings]


# ---------------------------------------------------------------- the model mapping

def test_defaults_are_pikas_declare_defaults():
    r = load_text("vhosts: {/: {exchanges: {x: {}}, queues: {q: }}}")
    assert r.ok, lines(r)
    assert r.topology.exchange("/", "x") == Exchange(vhost="/", name="x", type="direct", durable=False,
                                                     auto_delete=False, internal=False, arguments=Args())
    assert r.topology.queue("/", "q") == Queue(vhost="/", name="q")
    assert r.topology.vhosts == {("vhost", "/"): Vhost("/")}


def test_sugar_and_general_bindings_produce_the_same_model():
    sugar = load_text("""
        vhosts:
          /:
            exchanges: {t: {type: topic}}
            queues:
              q:
                bindings:
                  - {exchange: t, routing_key: "a.*", arguments: {k: 1}}
                  - {exchange: t}
    """)
    general = load_text("""
        vhosts:
          /:
            exchanges: {t: {type: topic}}
            queues: {q: {}}
            bindings:
              - {source: t, destination: q, destination_type: queue, routing_key: "a.*", arguments: {k: 1}}
              - {source: t, destination: q}
    """)
    assert sugar.ok and general.ok
    assert sugar.topology == general.topology
    assert Binding("/", "t", "q", "queue", "a.*", Args({"k": 1})) in sugar.topology.bindings


def test_the_same_binding_in_both_forms_is_one_binding():
    r = load_text("""
        vhosts:
          /:
            exchanges: {t: {type: topic}}
            queues: {q: {bindings: [{exchange: t, routing_key: k}]}}
            bindings: [{source: t, destination: q, routing_key: k}]
    """)
    assert r.ok and len(r.topology.bindings) == 1


def test_argument_values_keep_their_yaml_types():
    r = load_text("""
        vhosts:
          /:
            queues:
              a: {arguments: {x-message-ttl: 60000, x-foo: "60000", x-flag: true, x-ratio: 1.5}}
    """)
    args = r.topology.queue("/", "a").arguments
    assert type(args["x-message-ttl"]) is int and type(args["x-foo"]) is str
    assert args["x-flag"] is True and args["x-ratio"] == 1.5
    assert args != Args({"x-message-ttl": "60000", "x-foo": "60000", "x-flag": True, "x-ratio": 1.5})


def test_names_are_kept_exactly_as_written():
    r = load_text("""
        vhosts:
          /:
            queues: {404: {}, on: {}, "007": {}}
          prod/eu: {}
    """)
    assert r.ok, lines(r)
    assert {q.name for q in r.topology.queues.values()} == {"404", "on", "007"}
    assert {v.name for v in r.topology.vhosts.values()} == {"/", "prod/eu"}


def test_vhost_settings_policies_and_tests_are_mapped():
    r = load_text("""
        vhosts:
          v1:
            description: team
            tags: [a, b]
            default_queue_type: quorum
            exchanges: {h: {type: headers}}
            queues: {q: {durable: true}}
            policies:
              p: {pattern: "^q$", apply_to: queues, priority: 3, definition: {message-ttl: 1000}}
        tests:
          - {vhost: v1, exchange: h, headers: {format: pdf}, expect: [q]}
          - {vhost: v1, exchange: "", routing_key: q, expect: [q]}
    """, "t.yaml")
    assert r.ok, lines(r)
    assert r.topology.vhosts[("vhost", "v1")] == Vhost("v1", "team", ("a", "b"), "quorum")
    assert r.topology.policies[("policy", "v1", "p")] == Policy("v1", "p", "^q$", "queues", 3, Args({"message-ttl": 1000}))
    t1, t2 = r.topology.tests
    assert t1 == RouteTest("v1", "h", "", Args({"format": "pdf"}), ("q",))
    assert t1.position == Position("t.yaml", 12, 5)
    assert t2 == RouteTest("v1", "", "q", None, ("q",))


def test_policy_defaults():
    r = load_text("vhosts: {/: {policies: {p: {pattern: x, definition: {max-length: 1}}}}}")
    assert r.topology.policies[("policy", "/", "p")] == Policy("/", "p", "x", "all", 0, Args({"max-length": 1}))


def test_anchors_and_merge_keys_work_and_own_keys_win():
    r = load_text("""
        vhosts:
          /:
            queues:
              a: &base {durable: true, arguments: {x-queue-type: quorum}}
              b:
                <<: *base
                durable: true
              c: *base
    """)
    assert r.ok, lines(r)
    assert r.topology.queue("/", "b") == r.topology.queue("/", "a").replace(name="b")
    assert r.topology.queue("/", "c").arguments["x-queue-type"] == "quorum"


def test_empty_file_is_an_empty_topology():
    r = load_text("")
    assert r.ok and r.topology.counts()["queue"] == 0


def test_positions_point_at_the_declaration():
    r = load_text("""\
        vhosts:
          /:
            queues:
              q: {}
    """, "f.yaml")
    assert r.positions[("queue", "/", "q")] == Position("f.yaml", 4, 7)
    assert r.positions[("vhost", "/")] == Position("f.yaml", 2, 3)


# ---------------------------------------------------------------- findings

def test_all_errors_of_a_run_are_reported_at_once_sorted_by_position():
    r = load_text("""\
        vhosts:
          /:
            queues:
              a: {durable: "yes"}
              b: {durabel: true}
              c: {arguments: {x-queue-type: quorum}}
              d: {bindings: [{exchange: nowhere}]}
              a: {}
    """, "f.yaml")
    assert [f.position.line for f in r.errors] == sorted(f.position.line for f in r.errors)
    codes = [f.code for f in r.errors]
    assert codes == ["unknown-key", "quorum-not-durable", "dangling-reference", "duplicate-key"]


def test_a_broken_queue_does_not_also_make_its_bindings_dangling():
    r = load_text("""
        vhosts:
          /:
            exchanges: {x: {type: fanout, durable: maybe}}
            queues: {q: {durable: maybe}}
            bindings: [{source: x, destination: q}]
    """)
    assert [f.code for f in r.errors] == ["wrong-type", "wrong-type"]


def test_warnings_do_not_make_the_result_invalid():
    # on 4.0 three '#' are still accepted (a warning); 4.3 refuses them (tests/unit/test_validate_versions.py)
    r = load_text("""\
        vhosts:
          /:
            exchanges:
              x: {type: topic, arguments: {alternate-exchange: elsewhere}}
              c: {type: x-consistent-hash}
            queues:
              q:
                arguments: {x-dead-letter-exchange: gone}
                bindings: [{exchange: x, routing_key: "#.#.#"}]
                durable: true
    """, "w.yaml", target="4.0")
    assert r.ok and r.rabbitmq_version == "4.0"
    assert [(f.code, f.severity) for f in r.findings] == [
        ("dangling-alternate-exchange", "warning"), ("plugin-exchange-type", "warning"),
        ("dangling-dead-letter-exchange", "warning"), ("topic-key-too-many-hashes", "warning")]
    assert lines(r)[0] == ("w.yaml:4:56: warning: alternate-exchange 'elsewhere' of exchange 'x' is not declared in "
                           "the files (unroutable messages are dropped unless it exists on the broker)")


def test_builtin_amq_exchanges_and_default_dlx_need_no_declaration():
    r = load_text("""
        vhosts:
          /:
            queues:
              q:
                durable: true
                arguments: {x-dead-letter-exchange: ""}
                bindings: [{exchange: amq.topic, routing_key: "a.#"}]
            bindings: [{source: amq.fanout, destination: q}]
    """)
    assert r.ok and not r.findings, lines(r)


def test_exclusive_queue_in_a_quorum_default_vhost_stays_classic():
    r = load_text("""
        vhosts:
          /:
            default_queue_type: quorum
            queues:
              consumer: {durable: false, exclusive: true, arguments: {x-max-priority: 5}}
              durable_classic: {durable: true, arguments: {x-queue-type: classic, x-max-priority: 5}}
              implied_quorum: {durable: true, arguments: {x-max-priority: 5}}
    """)
    assert [(f.code, f.message.split("'")[1]) for f in r.errors] == [("argument-not-for-queue-type", "implied_quorum")]


def test_never_raises_on_garbage():
    for text in ["- a\n- b", "just a string", "{", "vhosts: 5", "vhosts: {/: [1]}", "tests: [1, 2]",
                 "vhosts: {/: {queues: {q: 5}}}", "\x00", "a: &x [*x]", "? [a]\n: 1"]:
        r = load_text(text)
        assert not r.ok, text
        assert all(f.position is not None for f in r.findings), text


# ---------------------------------------------------------------- several files

def test_conflicting_declarations_across_files_are_errors(tmp_path):
    a = write(tmp_path / "a.yaml", "vhosts: {/: {queues: {q: {durable: true}}}}\n")
    b = write(tmp_path / "b.yaml", "vhosts: {/: {queues: {q: {durable: false}}}}\n")
    r = load_topology([str(a), str(b)])
    assert [f.format() for f in r.errors] == [
        f"{b}:1:23: queue 'q' in vhost '/' is declared differently at {a}:1:23 (durable differs)"]


def test_identical_declarations_across_files_are_fine(tmp_path):
    a = write(tmp_path / "a.yaml", "vhosts: {/: {exchanges: {x: {type: fanout}}, queues: {q: {durable: true}}}}\n")
    b = write(tmp_path / "b.yaml", """
        vhosts:
          /:
            exchanges: {x: {type: fanout}}
            queues: {q: {durable: true, bindings: [{exchange: x}]}}
    """)
    r = load_topology([str(a), str(b)])
    assert r.ok and r.topology.counts() == {"vhost": 1, "exchange": 1, "queue": 1, "binding": 1, "policy": 0}
    assert r.files == (str(a), str(b))


def test_vhost_settings_merge_across_files_unless_they_clash(tmp_path):
    a = write(tmp_path / "a.yaml", "vhosts: {v: {description: d}}\n")
    b = write(tmp_path / "b.yaml", "vhosts: {v: {tags: [t]}}\n")
    c = write(tmp_path / "c.yaml", "vhosts: {v: {description: other}}\n")
    assert load_topology([str(a), str(b)]).topology.vhosts[("vhost", "v")] == Vhost("v", "d", ("t",))
    r = load_topology([str(a), str(c)])
    assert [f.code for f in r.errors] == ["conflicting-declaration"] and "description" in r.errors[0].message


def test_include_globs_are_relative_to_the_including_file(tmp_path):
    write(tmp_path / "team" / "main.yaml", """
        include: [parts/*.yaml, ../shared.yaml]
        vhosts: {/: {queues: {q: {bindings: [{exchange: x}]}}}}
    """)
    write(tmp_path / "team" / "parts" / "x.yaml", "vhosts: {/: {exchanges: {x: {type: fanout}}}}\n")
    write(tmp_path / "team" / "parts" / "y.yml", "vhosts: {/: {exchanges: {y: {}}}}\n")  # .yml not matched
    write(tmp_path / "shared.yaml", "include: team/main.yaml\nvhosts: {/: {queues: {s: {}}}}\n")  # a cycle
    r = load_topology([str(tmp_path / "team" / "main.yaml")])
    assert r.ok, lines(r)
    assert {q.name for q in r.topology.queues.values()} == {"q", "s"}
    assert len(r.files) == 3
    assert r.topology.exchange("/", "y") is None


def test_include_that_matches_nothing_warns_and_a_missing_file_is_an_error(tmp_path):
    main = write(tmp_path / "main.yaml", "include: [none/*.yaml, missing.yaml]\n")
    r = load_topology([str(main)])
    assert [(f.code, f.severity) for f in r.findings] == [("include-no-match", "warning"),
                                                          ("include-not-found", "error")]


def test_a_directory_means_every_yaml_file_in_it(tmp_path):
    write(tmp_path / "b.yml", "vhosts: {/: {queues: {b: {}}}}\n")
    write(tmp_path / "a.yaml", "vhosts: {/: {queues: {a: {}}}}\n")
    write(tmp_path / "notes.txt", "not yaml")
    write(tmp_path / "sub" / "c.yaml", "vhosts: {/: {queues: {c: {}}}}\n")
    assert discover_files([str(tmp_path)], {}, "/") == [str(tmp_path / "a.yaml"), str(tmp_path / "b.yml")]
    r = load_topology([str(tmp_path)])
    assert {q.name for q in r.topology.queues.values()} == {"a", "b"}


# ---------------------------------------------------------------- discovery

def test_discovery_prefers_f_then_env_then_default(tmp_path):
    write(tmp_path / "topoform.yaml", "{}\n")
    write(tmp_path / "env.yaml", "{}\n")
    write(tmp_path / "given.yaml", "{}\n")
    env = {"TOPOFORM_FILE": str(tmp_path / "env.yaml")}
    assert discover_files([str(tmp_path / "given.yaml")], env, str(tmp_path)) == [str(tmp_path / "given.yaml")]
    assert discover_files([], env, str(tmp_path)) == [str(tmp_path / "env.yaml")]
    assert discover_files([], {}, str(tmp_path)) == [str(tmp_path / "topoform.yaml")]


def test_discovery_error_names_what_was_looked_for(tmp_path):
    with pytest.raises(InputError) as exc:
        discover_files([], {}, str(tmp_path))
    assert "TOPOFORM_FILE" in exc.value.message and "topoform.yaml" in exc.value.message
    with pytest.raises(InputError, match="not found: nope.yaml"):
        discover_files(["nope.yaml"], {}, str(tmp_path))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no \\*.yaml or \\*.yml files"):
        discover_files([str(tmp_path / "empty")], {}, str(tmp_path))


def test_relative_paths_are_shown_as_given(tmp_path, monkeypatch):
    write(tmp_path / "topoform.yaml", "vhosts: {/: {queues: {q: {durabel: true}}}}\n")
    monkeypatch.chdir(tmp_path)
    assert discover_files([], {}, ".") == ["topoform.yaml"]
    r = load_topology(discover_files(["topoform.yaml"], {}, "."))
    assert lines(r)[0].startswith("topoform.yaml:1:27: unknown key 'durabel'")


def test_unreadable_file_is_a_finding(tmp_path):
    p = tmp_path / "bin.yaml"
    p.write_bytes(b"\xff\xfe\x00garbage")
    r = load_topology([str(p)])
    assert [f.code for f in r.errors] == ["unreadable-file"]


@pytest.mark.parametrize("where, key, value, argument", [
    ("queue", "type", "quorum", "{x-queue-type: quorum}"),
    ("queue", "ttl", "60000", "{x-message-ttl: 60000}"),
    ("queue", "max-length", "10", "{x-max-length: 10}"),
    ("queue", "x-single-active-consumer", "true", "{x-single-active-consumer: true}"),
    ("exchange", "alternate-exchange", "ae", "{alternate-exchange: ae}"),
])
def test_a_setting_written_as_a_key_names_the_argument_it_is(tmp_path, where, key, value, argument):
    body = "{type: topic, %s: %s}" % (key, value) if where == "exchange" else "{%s: %s}" % (key, value)
    write(tmp_path / "t.yaml", "vhosts: {/: {%ss: {o: %s}}}\n" % (where, body))
    found = lines(load_topology([str(tmp_path / "t.yaml")]))
    assert len(found) == 1 and f"unknown key '{key}' in {where} 'o'" in found[0], found
    assert f"the broker takes it as an argument: arguments: {argument}" in found[0], found


def test_a_typo_of_a_field_is_not_taken_for_an_argument(tmp_path):
    write(tmp_path / "t.yaml", "vhosts: {/: {queues: {o: {durabel: true, colour: red}}}}\n")
    found = lines(load_topology([str(tmp_path / "t.yaml")]))
    assert "did you mean 'durable'?" in found[0] and "as an argument" not in " ".join(found), found
