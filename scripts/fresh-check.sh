#!/usr/bin/env bash
# Run the README's two commands the way a fresh Debian machine would: in a new Debian
# bookworm root (mmdebstrap, minbase + python3 + git: no Graphviz, no RabbitMQ, no venv),
# on a fresh clone of this repository's HEAD.
#
#   bash scripts/fresh-check.sh demo     # README command 1 (offline; brokers untouched)
#   bash scripts/fresh-check.sh test     # README command 2 (builds and starts its own
#                                        # brokers inside the root: the host's test brokers
#                                        # must be stopped first, they use the same ports)
#   bash scripts/fresh-check.sh all
#
# The root is made anew each run under $TOPOFORM_FRESH_HOME (default /var/lib/topoform-fresh)
# and removed afterwards (KEEP=1 keeps it). Needs root with unshare/chroot, like the brokers.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
WHAT="${1:-all}"
HOME_DIR="${TOPOFORM_FRESH_HOME:-/var/lib/topoform-fresh}"
ROOT="$HOME_DIR/root.$$"
mirror() {
  local m
  m="$(grep -hoE '^URIs:[[:space:]]*\S+' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -n1 || true)"
  echo "${m:-http://deb.debian.org/debian}"
}
command -v mmdebstrap >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/dev/null; }
mkdir -p "$HOME_DIR"
cleanup() {
  # end every process this check started inside the root (brokers, epmd), by PID
  for p in /proc/[0-9]*; do
    r="$(readlink "$p/root" 2>/dev/null || true)"
    case "$r" in "$ROOT"|"$ROOT"/*) kill -TERM "${p#/proc/}" 2>/dev/null || true ;; esac
  done
  sleep 3
  for p in /proc/[0-9]*; do
    r="$(readlink "$p/root" 2>/dev/null || true)"
    case "$r" in "$ROOT"|"$ROOT"/*) kill -KILL "${p#/proc/}" 2>/dev/null || true ;; esac
  done
  umount -R "$ROOT/proc" "$ROOT/dev" "$ROOT/sys" "$ROOT/opt" 2>/dev/null || true
  # the mounts live in the check's own mount namespace; never delete through one that leaked
  for m in proc dev sys opt; do
    if mountpoint -q "$ROOT/$m" 2>/dev/null; then echo "fresh-check: $ROOT/$m still mounted; left in place" >&2; return; fi
  done
  if [ -z "${KEEP:-}" ]; then rm -rf --one-file-system "$ROOT"; fi
}
trap cleanup EXIT
echo "fresh-check: building a bookworm root (python3, git; nothing else) in $ROOT"
unshare -m mmdebstrap --quiet --variant=minbase --include=python3,git,ca-certificates \
  --customize-hook='echo "127.0.0.1 localhost" >"$1/etc/hosts"' \
  bookworm "$ROOT" "$(mirror)" >"$HOME_DIR/build.log" 2>&1 || { tail -n 20 "$HOME_DIR/build.log"; exit 1; }
# What every machine of this kind has from its image (not installed by hand): the CA
# certificates its package registries are reached through, the pip and apt settings and
# the local package stores under /opt. The environment is the machine's too (CI keeps it).
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
mkdir -p "$ROOT/usr/local/share/ca-certificates" "$ROOT/etc/ssl/certs" "$ROOT/root/.config" "$ROOT/etc/xdg" "$ROOT/opt"
cp -a /usr/local/share/ca-certificates/. "$ROOT/usr/local/share/ca-certificates/" 2>/dev/null || true
cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/ca-certificates.crt"
for f in /etc/pip.conf /etc/xdg/pip /root/.config/pip /etc/apt/apt.conf.d/99artifact-registry; do
  [ -e "$f" ] && cp -a "$f" "$ROOT$f"
done
MOUNT_OPT=""
[ -d /opt ] && MOUNT_OPT='mount --rbind /opt "$0/opt" && mount -o remount,bind,ro "$0/opt" &&'
PASS_ENV=()
while IFS='=' read -r k v; do
  case "$k" in PIP_*|SSL_CERT_*|REQUESTS_CA_BUNDLE|CURL_CA_BUNDLE|NODE_EXTRA_CA_CERTS|PYTHON*) PASS_ENV+=("$k=$v") ;; esac
done < <(env)
mkdir -p "$ROOT/work"
git clone -q --no-hardlinks "$REPO" "$ROOT/work/topoform"
echo "fresh-check: cloned $(git -C "$REPO" rev-parse --short HEAD) into the root"

case "$WHAT" in
  demo) STEPS='bash scripts/demo.sh' ;;
  test) STEPS='bash scripts/test.sh' ;;
  all) STEPS='bash scripts/demo.sh && bash scripts/test.sh' ;;
  *) echo "usage: $0 demo|test|all" >&2; exit 1 ;;
esac
unshare -m sh -c '
  mount -t proc proc "$0/proc" && mount --rbind /dev "$0/dev" && mount --rbind /sys "$0/sys" && '"$MOUNT_OPT"'
  steps="$1"; shift
  exec chroot "$0" env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin CI=true "$@" \
    bash -c "cd /work/topoform && $steps"' "$ROOT" "$STEPS" "${PASS_ENV[@]}"
echo "fresh-check: $WHAT passed in a fresh root"
