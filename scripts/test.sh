#!/usr/bin/env bash
# Set everything up on a fresh Debian machine (venv, Graphviz, the three test brokers),
# then run the whole test suite: the offline tests once, the broker-backed tests against
# each of RabbitMQ 3.10.8, 4.0.5 and 4.3.6 (scripts/brokers.tsv), and the cluster tests
# (marker `cluster`) once on the 3-node 4.3 cluster of scripts/cluster.sh (scripts/cluster.tsv).
#
#   bash scripts/test.sh                 # everything, every broker, the cluster
#   bash scripts/test.sh --offline       # only the tests that need no broker
#   TOPOFORM_TEST_BROKERS="4.3" bash scripts/test.sh    # broker tests on 4.3 only (+ the cluster)
#   TOPOFORM_TEST_BROKERS=none bash scripts/test.sh     # no single-broker tests
#   TOPOFORM_TEST_CLUSTER=0 bash scripts/test.sh        # no cluster (neither started nor tested)
# Extra arguments go to every pytest run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PYTEST=(.venv/bin/python -m pytest -q -p no:cacheprovider)
for a in "$@"; do
  if [ "$a" = "--offline" ]; then exec "${PYTEST[@]}" "$@"; fi
done
BROKERS="${TOPOFORM_TEST_BROKERS:-3.10 4.0 4.3}"
[ "$BROKERS" = none ] && BROKERS=""
CLUSTER="${TOPOFORM_TEST_CLUSTER:-1}"
# shellcheck disable=SC2086
[ -z "$BROKERS" ] || bash scripts/broker.sh start $BROKERS
[ "$CLUSTER" = 0 ] || bash scripts/cluster.sh start
status=0
echo "== offline tests"
"${PYTEST[@]}" -m "not broker and not cluster" "$@" || status=1
for b in $BROKERS; do
  echo "== broker tests on RabbitMQ $b"
  TOPOFORM_TEST_BROKER="$b" "${PYTEST[@]}" -m broker "$@" || status=1
done
if [ "$CLUSTER" != 0 ]; then
  echo "== cluster tests on the 3-node cluster (scripts/cluster.tsv)"
  "${PYTEST[@]}" -m cluster "$@" || status=1
fi
done_what="offline + brokers: ${BROKERS:-none}"; [ "$CLUSTER" = 0 ] || done_what="$done_what + cluster"
if [ "$status" = 0 ]; then echo "test.sh: all green ($done_what)"; else echo "test.sh: FAILURES (see above)"; fi
exit $status
