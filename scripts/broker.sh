#!/usr/bin/env bash
# The test brokers, idempotently: RabbitMQ 3.10.8 (this machine's Debian package) and
# 4.0.5 / 4.3.6 (Debian trixie / forky packages, each in its own Debian root built with
# mmdebstrap), each on its own ports, node name, epmd port and cookie, with the
# management, federation, shovel and stream plugins. A broker whose API already answers
# is reused untouched. Ports and names: scripts/brokers.tsv.
#
#   scripts/broker.sh [start] [3.10|4.0|4.3|all]...   # ensure running (default: all)
#   scripts/broker.sh stop [NAME|all]...              # stop the nodes this script started
#   scripts/broker.sh status                          # one line per broker
#   scripts/broker.sh ctl NAME ARGS...                # that node's own rabbitmqctl
#
# Roots live in $TOPOFORM_BROKER_HOME (default /var/lib/topoform-brokers), built once
# into a temporary folder under a lock and renamed when complete. Needs root with
# CAP_SYS_ADMIN (unshare, mount, chroot) for the roots.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
HOME_DIR="${TOPOFORM_BROKER_HOME:-/var/lib/topoform-brokers}"
MIRROR="${TOPOFORM_DEBIAN_MIRROR:-}"
WAIT_SECONDS="${TOPOFORM_BROKER_WAIT:-180}"
CRED="${TOPOFORM_TEST_CREDENTIALS:-guest:guest}"
PLUGINS="rabbitmq_management,rabbitmq_federation,rabbitmq_federation_management,rabbitmq_shovel,rabbitmq_shovel_management,rabbitmq_stream"
ROOT_PATH="/usr/sbin:/usr/bin:/sbin:/bin"

log() { echo "broker: $*"; }
die() { echo "broker: $*" >&2; exit 1; }

row() {  # row NAME -> sets SUITE AMQP HTTP DIST EPMD STREAM NODE
  local line
  line="$(awk -v n="$1" '$1 == n' "$HERE/brokers.tsv")"
  [ -n "$line" ] || die "unknown broker '$1' (known: $(names | tr '\n' ' '))"
  read -r _ SUITE AMQP HTTP DIST EPMD STREAM NODE <<<"$line"
}
names() { awk '!/^#/ && NF {print $1}' "$HERE/brokers.tsv"; }

api_up() {  # api_up HTTP_PORT
  python3 - "$1" "$CRED" <<'PY' >/dev/null 2>&1
import base64, sys, urllib.request
req = urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}/api/overview")
req.add_header("Authorization", "Basic " + base64.b64encode(sys.argv[2].encode()).decode())
urllib.request.urlopen(req, timeout=3).read()
PY
}

wait_api() {  # wait_api NAME HTTP_PORT LOGHINT
  echo -n "broker: $1: waiting for the management API on port $2 "
  for _ in $(seq 1 "$WAIT_SECONDS"); do
    if api_up "$2"; then echo " up"; return 0; fi
    echo -n "."; sleep 1
  done
  echo
  echo "broker: $1: the management API did not answer within ${WAIT_SECONDS}s; recent log lines:" >&2
  tail -n 40 $3 2>/dev/null >&2 || true
  return 1
}

apt_install() {  # apt_install PKG... (only the missing ones)
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]} from Debian's packages"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

mirror() {
  if [ -n "$MIRROR" ]; then echo "$MIRROR"; return; fi
  local m
  m="$(grep -hoE '^URIs:[[:space:]]*\S+' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -n1 || true)"
  [ -n "$m" ] || m="$(grep -hoE '^deb\s+\S+' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | grep -v security | head -n1 || true)"
  echo "${m:-http://deb.debian.org/debian}"
}

# ---------------------------------------------------------------- the system broker (3.10)
system_start() {
  if api_up "$HTTP"; then log "3.10: reusing the RabbitMQ answering on port $HTTP"; return 0; fi
  if [ ! -x /usr/sbin/rabbitmq-server ]; then
    # Keep the package's own start (under the host name, default config) from running.
    local prc=/usr/sbin/policy-rc.d ours=""
    if [ ! -e "$prc" ]; then printf '#!/bin/sh\nexit 101\n' >"$prc"; chmod 755 "$prc"; ours=1; fi
    apt_install rabbitmq-server || { [ -n "$ours" ] && rm -f "$prc"; exit 1; }
    [ -n "$ours" ] && rm -f "$prc"
  fi
  export PATH="$PATH:/usr/sbin" RABBITMQ_NODENAME="$NODE"
  # The package may have started a node under the host name; ours is rabbit@localhost.
  local conf=/etc/rabbitmq/rabbitmq.conf
  if ! grep -q 'topoform test broker' "$conf" 2>/dev/null; then
    cat >"$conf" <<EOF
# topoform test broker (written by scripts/broker.sh)
listeners.tcp.default = $AMQP
management.tcp.port = $HTTP
stream.listeners.tcp.default = $STREAM
loopback_users = none
EOF
  fi
  echo "[${PLUGINS}]." >/etc/rabbitmq/enabled_plugins
  if ! rabbitmqctl -q -n "$NODE" status >/dev/null 2>&1; then
    log "3.10: starting $NODE"
    RABBITMQ_NODENAME="$NODE" rabbitmq-server -detached >/dev/null 2>&1 || true
  fi
  wait_api 3.10 "$HTTP" "/var/log/rabbitmq/*.log"
}

# ---------------------------------------------------------------- a broker in its own root
root_of() { echo "$HOME_DIR/$1/root"; }

build_root() {  # build_root NAME SUITE
  local name="$1" suite="$2" root tmp
  root="$(root_of "$name")"
  [ -x "$root/usr/sbin/rabbitmq-server" ] && return 0
  apt_install mmdebstrap
  mkdir -p "$HOME_DIR/$name"
  (
    flock 9
    [ -x "$root/usr/sbin/rabbitmq-server" ] && exit 0
    tmp="$HOME_DIR/$name/root.tmp.$$"
    rm -rf "$HOME_DIR/$name"/root.tmp.*
    log "$name: building a Debian $suite root with rabbitmq-server (once; about a minute)"
    unshare -m mmdebstrap --quiet --variant=minbase --include=rabbitmq-server \
      --aptopt='Acquire::Check-Valid-Until "false"' \
      --essential-hook='echo "rabbitmq:x:900:" >>"$1/etc/group" && echo "rabbitmq:x:900:900:RabbitMQ:/var/lib/rabbitmq:/usr/sbin/nologin" >>"$1/etc/passwd" && echo "rabbitmq:!:20000::::::" >>"$1/etc/shadow"' \
      --customize-hook='printf "#!/bin/sh\nexit 101\n" >"$1/usr/sbin/policy-rc.d" && chmod 755 "$1/usr/sbin/policy-rc.d"' \
      --customize-hook='echo "127.0.0.1 localhost" >"$1/etc/hosts"' \
      "$suite" "$tmp" "$(mirror)" >"$HOME_DIR/$name/build.log" 2>&1 \
      || { tail -n 30 "$HOME_DIR/$name/build.log" >&2; rm -rf "$tmp"; exit 1; }
    mv "$tmp" "$root"
  ) 9>"$HOME_DIR/$name/.lock"
  [ -x "$root/usr/sbin/rabbitmq-server" ] || die "$name: the root was not built (see $HOME_DIR/$name/build.log)"
}

configure_root() {  # configure_root NAME
  local root; root="$(root_of "$1")"
  mkdir -p "$root/etc/rabbitmq"
  cat >"$root/etc/rabbitmq/rabbitmq-env.conf" <<EOF
NODENAME=$NODE
DIST_PORT=$DIST
export ERL_EPMD_PORT=$EPMD
EOF
  cat >"$root/etc/rabbitmq/rabbitmq.conf" <<EOF
# topoform test broker $1 (written by scripts/broker.sh)
listeners.tcp.default = 127.0.0.1:$AMQP
management.tcp.ip = 127.0.0.1
management.tcp.port = $HTTP
stream.listeners.tcp.default = 127.0.0.1:$STREAM
loopback_users = none
EOF
  echo "[${PLUGINS}]." >"$root/etc/rabbitmq/enabled_plugins"
  chroot "$root" chown -R rabbitmq:rabbitmq /etc/rabbitmq /var/lib/rabbitmq /var/log/rabbitmq
}

in_root() {  # in_root NAME CMD... : run CMD as rabbitmq inside the root, with /proc mounted
  local root; root="$(root_of "$1")"; shift
  unshare -m sh -c 'mount -t proc proc "$0/proc" && exec chroot --userspec=rabbitmq:rabbitmq "$0" env -i HOME=/var/lib/rabbitmq PATH='"$ROOT_PATH"' ERL_EPMD_PORT='"$EPMD"' "$@"' "$root" "$@"
}

pid_alive_in_root() {  # pid_alive_in_root PIDFILE ROOT
  local pid
  [ -f "$1" ] || return 1
  pid="$(cat "$1")"
  [ -n "$pid" ] && [ -d "/proc/$pid" ] && [ "$(readlink "/proc/$pid/root" 2>/dev/null)" = "$2" ]
}

root_start() {  # root_start NAME
  local name="$1" root pidfile
  if api_up "$HTTP"; then log "$name: reusing the RabbitMQ answering on port $HTTP"; return 0; fi
  build_root "$name" "$SUITE"
  root="$(root_of "$name")"
  pidfile="$HOME_DIR/$name/server.pid"
  if ! pid_alive_in_root "$pidfile" "$root"; then
    configure_root "$name"
    log "$name: starting $NODE (AMQP $AMQP, HTTP $HTTP, epmd $EPMD)"
    # epmd of the root's own Erlang, on the node's own port.
    unshare -m sh -c 'exec chroot --userspec=rabbitmq:rabbitmq "$0" env -i HOME=/var/lib/rabbitmq PATH='"$ROOT_PATH"' epmd -address 127.0.0.1 -port '"$EPMD"' -daemon' "$root" 9>&- || true
    # The server in the foreground of its own session; the recorded PID becomes it.
    setsid bash -c 'echo $$ >"$0"; exec unshare -m sh -c '\''mount -t proc proc "$0/proc" && exec chroot --userspec=rabbitmq:rabbitmq "$0" env -i HOME=/var/lib/rabbitmq PATH='"$ROOT_PATH"' rabbitmq-server'\'' "$1"' \
      "$pidfile" "$root" </dev/null >"$HOME_DIR/$name/server.out" 2>&1 9>&- &
    disown || true
  fi
  wait_api "$name" "$HTTP" "$HOME_DIR/$name/server.out $root/var/log/rabbitmq/*.log"
}

root_stop() {  # root_stop NAME: only the node this script started, by its recorded PID
  local name="$1" root pidfile pid
  root="$(root_of "$name")"; pidfile="$HOME_DIR/$name/server.pid"
  if pid_alive_in_root "$pidfile" "$root"; then
    pid="$(cat "$pidfile")"
    log "$name: stopping PID $pid and its process group"
    # the recorded PID leads the node's own session (setsid): rabbitmq-server's shell and the
    # Erlang VM under it are in its group; a TERM to the leader alone left the VM running
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
    for _ in $(seq 1 120); do pgrep -g "$pid" >/dev/null 2>&1 || break; sleep 0.5; done
    rm -f "$pidfile"
  else
    log "$name: not started by this script; left alone"
  fi
}

# ---------------------------------------------------------------- dispatch
[ "$(id -u)" = 0 ] || die "run as root (it installs packages and builds Debian roots)"
cmd="start"
case "${1:-}" in start|stop|status|ctl) cmd="$1"; shift ;; esac
if [ "$cmd" = ctl ]; then
  row "$1"; n="$1"; shift
  if [ "$SUITE" = system ]; then exec rabbitmqctl -n "$NODE" "$@"; fi
  in_root "$n" rabbitmqctl "$@"; exit $?
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ] || [ "${targets[0]}" = all ]; then mapfile -t targets < <(names); fi
for n in "${targets[@]}"; do
  row "$n"
  case "$cmd" in
    start) if [ "$SUITE" = system ]; then system_start; else root_start "$n"; fi ;;
    stop) if [ "$SUITE" = system ]; then log "3.10: the system broker is left running"; else root_stop "$n"; fi ;;
    status) if api_up "$HTTP"; then echo "$n up (AMQP $AMQP, HTTP $HTTP)"; else echo "$n down"; fi ;;
  esac
done
