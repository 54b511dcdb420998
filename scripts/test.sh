#!/usr/bin/env bash
# Set everything up on a fresh Debian machine (venv, RabbitMQ with management),
# then run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/broker.sh
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
