"""Imports point one way (DESIGN.md): checked in fresh interpreters.

``model`` knows no yaml, requests or pika; ``routing`` and ``planner`` never touch
``broker`` transports; ``errors`` is a leaf. Modules that do not exist yet are skipped
by the check itself (a missing module is reported by other tests).
"""
import json
import subprocess
import sys

import pytest

CHECK = r"""
import importlib, importlib.util, json, sys
mod = sys.argv[1]
if importlib.util.find_spec(mod) is None:
    print(json.dumps(None)); raise SystemExit
importlib.import_module(mod)
print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('yaml','requests','pika','jsonschema','deepdiff','topoform'))))
"""

FORBIDDEN = {
    "topoform.errors": ["yaml", "requests", "pika", "jsonschema", "deepdiff", "topoform.model"],
    "topoform.model": ["yaml", "requests", "pika", "jsonschema", "topoform.broker", "topoform.planner", "topoform.cli"],
    "topoform.routing": ["requests", "pika", "topoform.broker", "topoform.planner", "topoform.apply", "topoform.cli"],
    "topoform.planner": ["requests", "pika", "topoform.broker.http", "topoform.broker.amqp", "topoform.apply", "topoform.cli"],
    "topoform.load": ["requests", "pika", "topoform.broker", "topoform.planner", "topoform.apply", "topoform.cli"],
    "topoform.graph": ["requests", "pika", "topoform.broker", "topoform.apply", "topoform.cli"],
}


@pytest.mark.parametrize("module", sorted(FORBIDDEN))
def test_module_keeps_its_imports_pointing_one_way(module):
    out = subprocess.run([sys.executable, "-c", CHECK, module], capture_output=True, text=True, check=True).stdout
    loaded = json.loads(out)
    if loaded is None:
        pytest.fail(f"{module} does not exist")
    bad = [m for m in loaded for f in FORBIDDEN[module] if m == f or m.startswith(f + ".")]
    assert not bad, f"{module} imports {bad}"
