#!/usr/bin/env bash
# The main job on the bundled examples, offline (no broker needed):
# validate the files, run their route tests, and answer one routing question.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
TF=.venv/bin/topoform
set -x
$TF validate -f examples/topologies
$TF test -f examples/topologies
(cd examples/topologies && ../../$TF test-route topic_logs lazy.pink.rabbit)
$TF graph -f examples/topologies/topoform.yaml --format mermaid --route topic_logs lazy.pink.rabbit
