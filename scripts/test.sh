#!/usr/bin/env bash
# Set everything up on a fresh Debian machine (venv, Graphviz, the three test brokers),
# then run the whole test suite: the offline tests once, and the broker-backed tests
# against each of RabbitMQ 3.10.8, 4.0.5 and 4.3.6 (scripts/brokers.tsv).
#
#   bash scripts/test.sh                 # everything, every broker
#   bash scripts/test.sh --offline       # only the tests that need no broker
#   TOPOFORM_TEST_BROKERS="4.3" bash scripts/test.sh    # broker tests on 4.3 only
# Extra arguments go to every pytest run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PYTEST=(.venv/bin/python -m pytest -q -p no:cacheprovider)
for a in "$@"; do
  if [ "$a" = "--offline" ]; then exec "${PYTEST[@]}" "$@"; fi
done
BROKERS="${TOPOFORM_TEST_BROKERS:-3.10 4.0 4.3}"
# shellcheck disable=SC2086
bash scripts/broker.sh start $BROKERS
status=0
echo "== offline tests"
"${PYTEST[@]}" -m "not broker" "$@" || status=1
for b in $BROKERS; do
  echo "== broker tests on RabbitMQ $b"
  TOPOFORM_TEST_BROKER="$b" "${PYTEST[@]}" -m broker "$@" || status=1
done
if [ "$status" = 0 ]; then echo "test.sh: all green (offline + brokers: $BROKERS)"; else echo "test.sh: FAILURES (see above)"; fi
exit $status
