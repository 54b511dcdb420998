#!/usr/bin/env bash
# Make a local RabbitMQ with the management plugin available, idempotently:
# install it from Debian's packages when missing, enable the management plugin,
# start the node when it is not running, and wait until the HTTP API answers.
# A broker that already answers is reused untouched.
#
#   scripts/broker.sh          # ensure running
#   scripts/broker.sh stop     # stop the node this script manages
set -euo pipefail

export RABBITMQ_NODENAME="${RABBITMQ_NODENAME:-rabbit@localhost}"
API="${TOPOFORM_TEST_MANAGEMENT_URL:-http://localhost:15672}"
USER_PASS="${TOPOFORM_TEST_CREDENTIALS:-guest:guest}"
WAIT_SECONDS="${TOPOFORM_BROKER_WAIT:-180}"

api_up() {
  python3 - "$API" "$USER_PASS" <<'PY' >/dev/null 2>&1
import base64, sys, urllib.request
api, cred = sys.argv[1], sys.argv[2]
req = urllib.request.Request(api + "/api/overview")
req.add_header("Authorization", "Basic " + base64.b64encode(cred.encode()).decode())
urllib.request.urlopen(req, timeout=3).read()
PY
}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if [ "${1:-}" = "stop" ]; then
  rabbitmqctl stop >/dev/null 2>&1 || true
  exit 0
fi

if api_up; then
  echo "broker: reusing the RabbitMQ answering at $API"
  exit 0
fi

if ! command -v rabbitmq-server >/dev/null 2>&1 && [ ! -x /usr/sbin/rabbitmq-server ]; then
  echo "broker: installing rabbitmq-server from Debian's packages"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq rabbitmq-server >/dev/null
fi
export PATH="$PATH:/usr/sbin"

# --offline edits the enabled-plugins file only, so it works before the node runs.
as_root rabbitmq-plugins enable --offline rabbitmq_management >/dev/null

if ! rabbitmqctl -q status >/dev/null 2>&1; then
  echo "broker: starting $RABBITMQ_NODENAME"
  # The Debian package may have tried to start a node under the machine's host name;
  # stop any half-started one so ours can take the ports.
  rabbitmq-server -detached >/dev/null 2>&1 || true
fi

echo -n "broker: waiting for the management API at $API "
for _ in $(seq 1 "$WAIT_SECONDS"); do
  if api_up; then echo " up"; exit 0; fi
  echo -n "."
  sleep 1
done
echo
echo "broker: the management API did not answer within ${WAIT_SECONDS}s; recent log lines:" >&2
tail -n 30 /var/log/rabbitmq/*.log 2>/dev/null >&2 || true
exit 1
