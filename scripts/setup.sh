#!/usr/bin/env bash
# Create .venv (if missing) and install topoform into it with its test dependencies.
# Idempotent; safe to re-run. Works as root on a fresh Debian machine.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if ! command -v "$PY" >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv python3-pip >/dev/null
fi
if [ ! -x .venv/bin/python ]; then
  if ! "$PY" -m venv .venv 2>/dev/null; then
    rm -rf .venv
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    "$PY" -m venv .venv
  fi
fi
# System packages the tests need: Graphviz's dot (graph --format svg/png rendering tests).
if ! command -v dot >/dev/null 2>&1; then
  echo "setup: installing graphviz from Debian's packages"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends graphviz >/dev/null
fi
# zsh and fish: the completion tests check the generated scripts' syntax with the shells
# themselves (bash is always there); git: the pre-commit hook tests make temporary repositories.
missing=""
for tool in zsh fish git; do command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"; done
if [ -n "$missing" ]; then
  echo "setup: installing$missing from Debian's packages"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null 2>&1 || true
log="$(mktemp)"
if ! .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]' >"$log" 2>&1; then
  cat "$log" >&2; rm -f "$log"
  echo "setup: installing topoform and its dependencies into .venv failed (see above)" >&2
  exit 1
fi
rm -f "$log"
echo "setup: topoform installed in .venv ($(.venv/bin/topoform --version))"
