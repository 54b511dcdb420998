#!/usr/bin/env bash
# The test cluster, idempotently: three RabbitMQ 4.3.6 nodes (rabbitc1..3@localhost) on this
# machine, all from the Debian forky root that scripts/broker.sh builds for its 4.3 broker, each
# with its own node name, ports and data folder, one shared epmd and one shared Erlang cookie,
# nodes 2 and 3 joined to node 1. Ports and names: scripts/cluster.tsv. The single test
# brokers of scripts/brokers.tsv are never touched (the 4.3 root is only read, plus one empty
# mount point /srv/topoform-node in it).
#
#   scripts/cluster.sh [start]          # ensure the three nodes run, joined and healthy
#   scripts/cluster.sh stop             # stop the nodes (and the epmd) this script started
#   scripts/cluster.sh status           # one line per node + the cluster's view; exit 0 when 3/3 run
#   scripts/cluster.sh kill N           # SIGKILL node N (its whole process group; by recorded PID)
#   scripts/cluster.sh stop-node N      # stop node N gracefully
#   scripts/cluster.sh start-node N     # start node N again (it rejoins by itself) and wait for it
#   scripts/cluster.sh ctl N ARGS...    # node N's rabbitmqctl
#   scripts/cluster.sh tool N CLI ARGS  # node N's rabbitmq-queues / rabbitmq-diagnostics / ...
#
# Data: $TOPOFORM_BROKER_HOME/cluster-4.3/nN/home (default /var/lib/topoform-brokers), bound
# into the root at /srv/topoform-node inside each node's own mount namespace. Needs root
# (unshare, mount, chroot), like scripts/broker.sh.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
HOME_DIR="${TOPOFORM_BROKER_HOME:-/var/lib/topoform-brokers}"
WAIT_SECONDS="${TOPOFORM_BROKER_WAIT:-180}"
CRED="${TOPOFORM_TEST_CREDENTIALS:-guest:guest}"
PLUGINS="rabbitmq_management,rabbitmq_federation,rabbitmq_federation_management,rabbitmq_shovel,rabbitmq_shovel_management,rabbitmq_stream"
ROOT_PATH="/usr/sbin:/usr/bin:/sbin:/bin"
MNT=/srv/topoform-node
TSV="$HERE/cluster.tsv"

log() { echo "cluster: $*"; }
die() { echo "cluster: $*" >&2; exit 1; }

names() { awk '!/^#/ && NF {print $1}' "$TSV"; }
row() {  # row N -> VERSION AMQP HTTP DIST EPMD STREAM NODE HOMEN PIDFILE OUT
  local line
  line="$(awk -v n="$1" '!/^#/ && $1 == n' "$TSV")"
  [ -n "$line" ] || die "unknown node '$1' (known: $(names | tr '\n' ' '))"
  read -r _ VERSION AMQP HTTP DIST EPMD STREAM NODE <<<"$line"
  NDIR="$CL/n$1"; HOMEN="$NDIR/home"; PIDFILE="$NDIR/server.pid"; OUT="$NDIR/server.out"
}
first="$(names | head -n1)"
read -r _ VERSION _ _ _ EPMD _ _ <<<"$(awk -v n="$first" '!/^#/ && $1 == n' "$TSV")"
ROOT="$HOME_DIR/$VERSION/root"
CL="$HOME_DIR/cluster-$VERSION"

api_get() {  # api_get HTTP_PORT PATH -> the JSON body on stdout (non-zero when unreachable)
  python3 - "$1" "$2" "$CRED" <<'PY' 2>/dev/null
import base64, sys, urllib.request
req = urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}{sys.argv[2]}")
req.add_header("Authorization", "Basic " + base64.b64encode(sys.argv[3].encode()).decode())
print(urllib.request.urlopen(req, timeout=3).read().decode())
PY
}
api_up() { api_get "$1" /api/overview >/dev/null; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

running_nodes() {  # running_nodes HTTP_PORT -> the node names that port's node sees running
  api_get "$1" /api/nodes | python3 -c 'import json,sys; print("\n".join(sorted(n["name"] for n in json.load(sys.stdin) if n.get("running"))))'
}
member_nodes() {  # member_nodes HTTP_PORT -> every node name of that node's cluster (running or not)
  api_get "$1" /api/nodes | python3 -c 'import json,sys; print("\n".join(sorted(n["name"] for n in json.load(sys.stdin))))'
}

pid_alive_in_root() {  # pid_alive_in_root PIDFILE
  local pid
  [ -f "$1" ] || return 1
  pid="$(cat "$1")"
  [ -n "$pid" ] && [ -d "/proc/$pid" ] && [ "$(readlink "/proc/$pid/root" 2>/dev/null)" = "$ROOT" ]
}

ensure_root() {
  [ -x "$ROOT/usr/sbin/rabbitmq-server" ] && return 0
  log "no $VERSION root yet: building it with scripts/broker.sh (this also starts its $VERSION test broker)"
  bash "$HERE/broker.sh" start "$VERSION"
  [ -x "$ROOT/usr/sbin/rabbitmq-server" ] || die "the $VERSION root was not built ($ROOT)"
}

configure_node() {  # configure_node N: the node's own config, env file, plugins and cookie
  row "$1"
  mkdir -p "$HOMEN/mnesia" "$HOMEN/log" "$ROOT$MNT"
  [ -s "$CL/cookie" ] || (umask 077; python3 -c 'import secrets,string; print("".join(secrets.choice(string.ascii_uppercase) for _ in range(32)))' >"$CL/cookie")
  install -m 400 "$CL/cookie" "$HOMEN/.erlang.cookie"
  cat >"$HOMEN/rabbitmq-env.conf" <<EOF
# topoform test cluster node $1 (written by scripts/cluster.sh)
NODENAME=$NODE
DIST_PORT=$DIST
MNESIA_BASE=$MNT/mnesia
LOG_BASE=$MNT/log
CONFIG_FILE=$MNT/rabbitmq.conf
ENABLED_PLUGINS_FILE=$MNT/enabled_plugins
PID_FILE=$MNT/rabbit.pid
SERVER_ADDITIONAL_ERL_ARGS="+sbwt none +sbwtdcpu none +sbwtdio none"
export ERL_EPMD_PORT=$EPMD
EOF
  cat >"$HOMEN/rabbitmq.conf" <<EOF
# topoform test cluster node $1 (written by scripts/cluster.sh)
listeners.tcp.default = 127.0.0.1:$AMQP
management.tcp.ip = 127.0.0.1
management.tcp.port = $HTTP
stream.listeners.tcp.default = 127.0.0.1:$STREAM
loopback_users = none
EOF
  echo "[${PLUGINS}]." >"$HOMEN/enabled_plugins"
  chown -R 900:900 "$HOMEN"
  write_run_sh
}

write_run_sh() {  # after row N
  # Runs inside the root as rabbitmq: a clean environment that names only this node's files.
  cat >"$HOMEN/run.sh" <<EOF
#!/bin/sh
cd $MNT && exec env -i HOME=$MNT PATH=/usr/lib/rabbitmq/bin:$ROOT_PATH RABBITMQ_CONF_ENV_FILE=$MNT/rabbitmq-env.conf ERL_EPMD_PORT=$EPMD ERL_CRASH_DUMP=$MNT/erl_crash.dump "\$@"
EOF
  chmod 755 "$HOMEN/run.sh"; chown root:root "$HOMEN/run.sh"
}

# in_node N CMD...: CMD as rabbitmq inside the root, in a private mount namespace with /proc
# and node N's home mounted at $MNT.
NS_SH='r="$1"; h="$2"; shift 2; mount -t proc proc "$r/proc" && mount --bind "$h" "$r'"$MNT"'" && exec chroot --userspec=rabbitmq:rabbitmq "$r" '"$MNT"'/run.sh "$@"'
in_node() {
  row "$1"; shift
  [ -d "$HOMEN" ] || die "node $NODE was never started here (run scripts/cluster.sh start)"
  write_run_sh
  unshare -m sh -c "$NS_SH" sh "$ROOT" "$HOMEN" "$@"
}

ensure_epmd() {
  port_open "$EPMD" && return 0
  log "starting epmd on port $EPMD"
  mkdir -p "$CL"
  setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' bash "$CL/epmd.pid" \
    unshare -m sh -c 'exec chroot --userspec=rabbitmq:rabbitmq "$1" env -i HOME=/var/lib/rabbitmq PATH='"$ROOT_PATH"' epmd -address 127.0.0.1 -port "$2"' sh "$ROOT" "$EPMD" \
    </dev/null >"$CL/epmd.out" 2>&1 9>&- &
  disown || true
  for _ in $(seq 1 50); do port_open "$EPMD" && return 0; sleep 0.2; done
  die "epmd did not listen on port $EPMD (see $CL/epmd.out)"
}

launch_node() {  # launch_node N: start node N unless its API answers or its process runs
  row "$1"
  if api_up "$HTTP"; then log "node $1: reusing $NODE answering on port $HTTP"; return 0; fi
  if pid_alive_in_root "$PIDFILE"; then log "node $1: $NODE is starting (PID $(cat "$PIDFILE"))"; return 0; fi
  configure_node "$1"
  log "node $1: starting $NODE (AMQP $AMQP, HTTP $HTTP, dist $DIST, stream $STREAM)"
  setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' bash "$PIDFILE" \
    unshare -m sh -c "$NS_SH" sh "$ROOT" "$HOMEN" /usr/lib/rabbitmq/bin/rabbitmq-server \
    </dev/null >"$OUT" 2>&1 9>&- &
  disown || true
}

wait_node() {  # wait_node N
  row "$1"
  echo -n "cluster: node $1: waiting for the management API on port $HTTP "
  for _ in $(seq 1 "$WAIT_SECONDS"); do
    if api_up "$HTTP"; then echo " up"; return 0; fi
    if ! pid_alive_in_root "$PIDFILE" && [ "$(stat -c %Y "$PIDFILE" 2>/dev/null || echo 0)" -lt $(( $(date +%s) - 10 )) ]; then
      echo; echo "cluster: node $1: $NODE exited; recent log lines:" >&2
      tail -n 30 "$OUT" "$HOMEN"/log/*.log 2>/dev/null >&2 || true
      return 1
    fi
    echo -n "."; sleep 1
  done
  echo; echo "cluster: node $1: no answer within ${WAIT_SECONDS}s; recent log lines:" >&2
  tail -n 30 "$OUT" "$HOMEN"/log/*.log 2>/dev/null >&2 || true
  return 1
}

join_node() {  # join_node N: join node N to the first node unless already its member
  local lead_http lead_node
  row "$first"; lead_http="$HTTP"; lead_node="$NODE"
  row "$1"
  if member_nodes "$lead_http" | grep -qx "$NODE"; then return 0; fi
  log "node $1: joining $NODE to $lead_node"
  in_node "$1" rabbitmqctl -q stop_app >/dev/null
  in_node "$1" rabbitmqctl -q join_cluster "$lead_node" >/dev/null
  in_node "$1" rabbitmqctl -q start_app >/dev/null
}

wait_healthy() {  # every node of the table running, as seen from each node
  local want n got http
  want="$(for n in $(names); do row "$n"; echo "$NODE"; done | sort)"
  echo -n "cluster: waiting for $(names | wc -l) running nodes "
  for _ in $(seq 1 "$WAIT_SECONDS"); do
    got=1
    for n in $(names); do
      row "$n"; http="$HTTP"
      [ "$(running_nodes "$http" || true)" = "$want" ] || { got=0; break; }
    done
    if [ "$got" = 1 ]; then echo " healthy"; return 0; fi
    echo -n "."; sleep 1
  done
  echo; die "the cluster did not become healthy within ${WAIT_SECONDS}s (scripts/cluster.sh status)"
}

stop_node() {  # stop_node N SIGNAL: only the node this script started, by its recorded PID
  row "$1"
  local pid
  if ! pid_alive_in_root "$PIDFILE"; then log "node $1: $NODE not running from this script; left alone"; return 0; fi
  pid="$(cat "$PIDFILE")"
  if [ "$2" = KILL ]; then
    log "node $1: SIGKILL to $NODE (process group $pid)"
    kill -KILL -- "-$pid" 2>/dev/null || true
  else
    log "node $1: stopping $NODE (PID $pid)"
    kill -TERM "$pid"
  fi
  for _ in $(seq 1 120); do [ -d "/proc/$pid" ] || break; sleep 0.5; done
  # The port must be free before a restart can bind it.
  for _ in $(seq 1 40); do port_open "$AMQP" || break; sleep 0.25; done
}

status() {
  local up=0 total=0 n view=""
  for n in $(names); do
    row "$n"; total=$((total + 1))
    if api_up "$HTTP"; then
      up=$((up + 1)); echo "$n up $NODE (AMQP $AMQP, HTTP $HTTP)"
      [ -n "$view" ] || view="$(running_nodes "$HTTP" | tr '\n' ' ')"
    else
      echo "$n down $NODE (AMQP $AMQP, HTTP $HTTP)"
    fi
  done
  echo "cluster: $up/$total nodes answer; running members: ${view:-none}"
  [ "$up" = "$total" ] && [ "$(echo "$view" | wc -w)" = "$total" ]
}

# ---------------------------------------------------------------- dispatch
[ "$(id -u)" = 0 ] || die "run as root (unshare, mount, chroot)"
cmd="${1:-start}"; [ $# -gt 0 ] && shift
case "$cmd" in
  start)
    [ $# -eq 0 ] || die "start takes no arguments (start-node N starts one node)"
    ensure_root; mkdir -p "$CL"; ensure_epmd
    for n in $(names); do launch_node "$n"; done
    for n in $(names); do wait_node "$n"; done
    for n in $(names); do [ "$n" = "$first" ] || join_node "$n"; done
    wait_healthy ;;
  stop)
    for n in $(names); do stop_node "$n" TERM & done; wait
    if [ -f "$CL/epmd.pid" ] && pid_alive_in_root "$CL/epmd.pid"; then
      log "stopping epmd (PID $(cat "$CL/epmd.pid"))"; kill -TERM "$(cat "$CL/epmd.pid")"
    fi ;;
  status) status ;;
  kill|stop-node)
    [ $# -eq 1 ] || die "usage: cluster.sh $cmd N"
    if [ "$cmd" = kill ]; then stop_node "$1" KILL; else stop_node "$1" TERM; fi ;;
  start-node)
    [ $# -eq 1 ] || die "usage: cluster.sh start-node N"
    row "$1"; ensure_root; ensure_epmd; launch_node "$1"; wait_node "$1" ;;
  ctl)
    [ $# -ge 1 ] || die "usage: cluster.sh ctl N ARGS..."
    n="$1"; shift; in_node "$n" rabbitmqctl "$@" ;;
  tool)
    [ $# -ge 2 ] || die "usage: cluster.sh tool N rabbitmq-queues|rabbitmq-diagnostics|rabbitmq-upgrade|rabbitmq-plugins|rabbitmq-streams ARGS..."
    n="$1"; t="$2"; shift 2
    case "$t" in rabbitmqctl|rabbitmq-queues|rabbitmq-diagnostics|rabbitmq-upgrade|rabbitmq-plugins|rabbitmq-streams) ;;
      *) die "unknown tool '$t'" ;; esac
    in_node "$n" "$t" "$@" ;;
  *) die "unknown command '$cmd' (start, stop, status, kill N, stop-node N, start-node N, ctl N ..., tool N CLI ...)" ;;
esac
