#!/usr/bin/env bash
# Local real servers for development, tests and the demo:
#   Apache Kafka (single-node KRaft, jars from Maven Central) on 127.0.0.1:$KAFKA_PORT (9092)
#   PostgreSQL (Debian packages) on 127.0.0.1:$PG_PORT (55432), database "helpdesk"
# Usage: stack.sh up|down|status (tests also use kafka-jars, kafka-kill, kafka-up, pg-restart)
# State, logs and jars live in $HELPDESK_STACK_DIR (default .stack/, git-ignored). Every server this
# script starts gets an owner file there (kafka/owner, pg.owner: checkout and state dir).
#   up      starts what does not answer; reuses what does, saying whose it is
#   down    stops only the servers this state dir started, and says what it left running and whose
#   status  per server: up or down, address, version, owner
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STATE="${HELPDESK_STACK_DIR:-$ROOT/.stack}"
mkdir -p "$STATE"
STATE="$(cd "$STATE" && pwd)"
LOGS="$STATE/logs"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
OWNER_PY="$PY"; [ -x "$OWNER_PY" ] || OWNER_PY=python3  # stack_owner.py needs the standard library only
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
PG_PORT="${PG_PORT:-55432}"
KAFKA_LIBS="$STATE/kafka-libs"
KAFKA_DIR="$STATE/kafka"
PG_DIR="$STATE/pg"
POM="$ROOT/deploy/local/kafka/pom.xml"
KAFKA_VERSION="$(sed -n 's#.*<kafka.version>\(.*\)</kafka.version>.*#\1#p' "$POM")"
mkdir -p "$LOGS"

log() { printf '[stack] %s\n' "$*" >&2; }

dump_log_and_fail() {
  log "$1 failed to start; last lines of $2:"
  tail -n 60 "$2" >&2 || true
  exit 1
}

# Who started the server on a port: prints a phrase ("started by …", "not started by any helpdesk
# checkout …"); exit 0 = this state dir, 3 = another checkout, 4 = no helpdesk stack, 5 = cannot
# see, 1 = nothing listens. See deploy/local/stack_owner.py.
owner_of() { "$OWNER_PY" "$ROOT/deploy/local/stack_owner.py" who "$1" "$2" "$STATE" "$ROOT"; }
owner_label() { "$OWNER_PY" "$ROOT/deploy/local/stack_owner.py" owner "$1" "$2" "$STATE" "$ROOT"; }
record_owner() { "$OWNER_PY" "$ROOT/deploy/local/stack_owner.py" record "$1" "$STATE" "$ROOT" "$2" "$3"; }
forget_owner() { "$OWNER_PY" "$ROOT/deploy/local/stack_owner.py" forget "$1" "$STATE"; }
server_version() { "$OWNER_PY" "$ROOT/deploy/local/stack_owner.py" version "$1" "$2"; }

# ---------- Kafka ----------
kafka_ready() {
  "$PY" "$ROOT/deploy/local/wait_kafka.py" "127.0.0.1:$KAFKA_PORT" "${1:-1}" >/dev/null 2>&1
}

# The broker and Kafka's command-line tools (deploy/local/kafka-tool.sh). A state dir resolved
# before the tools were added has the broker's jars only: it is resolved again.
kafka_jars() {
  if [ ! -f "$KAFKA_LIBS/kafka_2.13-$KAFKA_VERSION.jar" ] || [ ! -f "$KAFKA_LIBS/kafka-tools-$KAFKA_VERSION.jar" ]; then
    log "resolving Kafka $KAFKA_VERSION jars and tools from Maven Central (cached in $KAFKA_LIBS)"
    mvn -q -B -f "$POM" dependency:copy-dependencies \
      -DoutputDirectory="$KAFKA_LIBS" >"$LOGS/mvn.log" 2>&1 || dump_log_and_fail "mvn" "$LOGS/mvn.log"
  fi
}

# The broker this state dir started, if it still runs (its pid, checked against its command line).
our_kafka_pid() {
  [ -f "$KAFKA_DIR/pid" ] || return 1
  local pid; pid=$(cat "$KAFKA_DIR/pid")
  kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$KAFKA_DIR/server.properties" \
    && echo "$pid"
}

# Kafka answers on the port: say whose it is. Returns 1 when nothing answers.
kafka_reuse() {
  local who rc=0
  kafka_ready 1 || return 1
  who=$(owner_of kafka "$KAFKA_PORT") || rc=$?
  if [ "$rc" = 0 ]; then log "Kafka already runs on 127.0.0.1:$KAFKA_PORT, $who"
  else log "reusing Kafka on 127.0.0.1:$KAFKA_PORT $who"; fi
}

kafka_up() {
  kafka_reuse && return
  local pid
  if pid=$(our_kafka_pid); then  # ours, still starting (or recovering its logs after an unclean stop)
    log "waiting for the Kafka this state dir started (pid $pid)"
    kafka_ready 240 || dump_log_and_fail "Kafka" "$LOGS/kafka.log"
    kafka_reuse; return
  fi
  local who rc=0
  who=$(owner_of kafka "$KAFKA_PORT") || rc=$?
  if [ "$rc" = 0 ] || [ "$rc" = 3 ]; then  # a helpdesk stack's broker that does not answer yet
    log "127.0.0.1:$KAFKA_PORT is taken by a Kafka $who; waiting for it to answer"
    kafka_ready 60 && { kafka_reuse; return; }
  fi
  if [ "$rc" != 1 ]; then
    log "127.0.0.1:$KAFKA_PORT is taken by a process that does not answer as Kafka, $who: stop it or set KAFKA_PORT"
    exit 1
  fi
  kafka_jars
  mkdir -p "$KAFKA_DIR"
  local props="$KAFKA_DIR/server.properties"
  sed -e "s#@DATA@#$KAFKA_DIR/data#" -e "s#@PORT@#$KAFKA_PORT#g" -e "s#@CPORT@#$KAFKA_CONTROLLER_PORT#g" \
    "$ROOT/deploy/local/kafka/server.properties.in" >"$props"
  local cp="$KAFKA_LIBS/*"
  if [ ! -f "$KAFKA_DIR/data/meta.properties" ]; then
    local cluster_id
    cluster_id=$(java -cp "$cp" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)
    java -cp "$cp" -Dlog4j.configuration="file:$ROOT/deploy/local/kafka/log4j.properties" \
      kafka.tools.StorageTool format -t "$cluster_id" -c "$props" >"$LOGS/kafka-format.log" 2>&1 \
      || dump_log_and_fail "Kafka storage format" "$LOGS/kafka-format.log"
  fi
  log "starting Kafka on 127.0.0.1:$KAFKA_PORT (controller 127.0.0.1:$KAFKA_CONTROLLER_PORT, state dir $STATE)"
  nohup java -Xms256m -Xmx512m -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j.configuration="file:$ROOT/deploy/local/kafka/log4j.properties" \
    -cp "$cp" kafka.Kafka "$props" >"$LOGS/kafka.log" 2>&1 &
  pid=$!
  echo "$pid" >"$KAFKA_DIR/pid"
  record_owner kafka "$pid" "127.0.0.1:$KAFKA_PORT"
  kafka_ready 240 || dump_log_and_fail "Kafka" "$LOGS/kafka.log"  # after an unclean stop it recovers every log first
  log "Kafka $(kafka_version) ready"
}

kafka_version() { ls "$KAFKA_LIBS"/kafka_2.13-*.jar 2>/dev/null | sed -E 's/.*kafka_2.13-(.*)\.jar/\1/' | head -n 1; }

kafka_down() {
  local pid
  if pid=$(our_kafka_pid); then
    log "stopping Kafka on 127.0.0.1:$KAFKA_PORT (pid $pid, started by this state dir $STATE)"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
  else
    log "no Kafka started by this state dir ($STATE) runs"
  fi
  rm -f "$KAFKA_DIR/pid"; forget_owner kafka
  left_running kafka "$KAFKA_PORT" Kafka
}

# After `down`: whatever still listens on a port was not ours; say so, and whose it is.
left_running() {
  local who rc=0
  who=$(owner_of "$1" "$2") || rc=$?
  [ "$rc" = 1 ] || log "left $3 on 127.0.0.1:$2 running: $who"
}

# ---------- PostgreSQL ----------
pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

# Server options of every start. pg_stat_statements (statement counts in docs/benchmarks.md) is
# preloaded when the installed PostgreSQL ships it; a server already running keeps its options
# until it is restarted (make stack-down && make stack-up).
pg_opts() {
  local opts="-c listen_addresses=127.0.0.1 -p $PG_PORT -k /tmp -c max_connections=300"
  [ -f "$(dirname "$(pg_bin)")/lib/pg_stat_statements.so" ] && opts="$opts -c shared_preload_libraries=pg_stat_statements"
  echo "$opts"
}

as_postgres() {
  if [ "$(id -u)" = "0" ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_install() {
  if [ -z "$(pg_bin)" ] || [ ! -x "$(pg_bin)/postgres" ]; then
    [ "$(id -u)" = "0" ] || { log "PostgreSQL is not installed and I am not root: install the 'postgresql' package or set DATABASE_URL"; exit 1; }
    log "installing PostgreSQL from Debian packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >"$LOGS/apt.log" 2>&1 || true
    apt-get install -y -qq postgresql >>"$LOGS/apt.log" 2>&1 || dump_log_and_fail "apt-get install postgresql" "$LOGS/apt.log"
  fi
}

pg_ready() { "$(pg_bin)/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" 2>/dev/null; }

pg_pid() { head -n 1 "$PG_DIR/postmaster.pid" 2>/dev/null; }

pg_up() {
  if [ -n "${DATABASE_URL:-}" ]; then log "DATABASE_URL is set: using it, starting no PostgreSQL"; return; fi
  pg_install
  local bin; bin=$(pg_bin)
  if pg_ready; then
    local who rc=0
    who=$(owner_of postgres "$PG_PORT") || rc=$?
    if [ "$rc" = 0 ]; then log "PostgreSQL already runs on 127.0.0.1:$PG_PORT, $who"
    else log "reusing PostgreSQL on 127.0.0.1:$PG_PORT $who"; fi
    return
  fi
  if [ ! -f "$PG_DIR/PG_VERSION" ]; then
    mkdir -p "$PG_DIR"
    [ "$(id -u)" = "0" ] && chown postgres:postgres "$PG_DIR"
    chmod 700 "$PG_DIR"
    as_postgres "$bin/initdb" -D "$PG_DIR" -U postgres --auth=trust -E UTF8 >"$LOGS/pg-initdb.log" 2>&1 \
      || dump_log_and_fail "initdb" "$LOGS/pg-initdb.log"
  fi
  touch "$LOGS/postgres.log"; [ "$(id -u)" = "0" ] && chown postgres "$LOGS/postgres.log"
  log "starting PostgreSQL on 127.0.0.1:$PG_PORT (state dir $STATE)"
  as_postgres "$bin/pg_ctl" -D "$PG_DIR" -l "$LOGS/postgres.log" -w -t 60 \
    -o "$(pg_opts)" \
    start >/dev/null 2>&1 || dump_log_and_fail "PostgreSQL" "$LOGS/postgres.log"
  record_owner postgres "$(pg_pid)" "127.0.0.1:$PG_PORT"
  "$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -tAc "SELECT 1 FROM pg_roles WHERE rolname='helpdesk'" | grep -q 1 \
    || "$bin/psql" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -c "CREATE ROLE helpdesk LOGIN PASSWORD 'helpdesk' CREATEDB"
  # CREATEROLE: the migration tests create a DDL role and a runtime role of their own (and drop them).
  "$bin/psql" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -c "ALTER ROLE helpdesk CREATEROLE" >/dev/null
  "$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='helpdesk'" | grep -q 1 \
    || "$bin/psql" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -c "CREATE DATABASE helpdesk OWNER helpdesk"
  # The view the benchmarks read statement counts from (docs/benchmarks.md), when the library is loaded.
  case "$(pg_opts)" in *pg_stat_statements*)
    "$bin/psql" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d helpdesk -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null ;;
  esac
  log "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') ready"
}

pg_down() {
  if [ -n "${DATABASE_URL:-}" ]; then log "DATABASE_URL is set: stopping no PostgreSQL"; return; fi
  local bin; bin=$(pg_bin)
  [ -n "$bin" ] || { log "PostgreSQL is not installed: nothing to stop"; return 0; }
  if [ -f "$PG_DIR/postmaster.pid" ] && as_postgres "$bin/pg_ctl" -D "$PG_DIR" status >/dev/null 2>&1; then
    log "stopping PostgreSQL on 127.0.0.1:$PG_PORT (pid $(pg_pid), started by this state dir $STATE)"
    as_postgres "$bin/pg_ctl" -D "$PG_DIR" -m fast -w stop >/dev/null 2>&1 || true
  else
    log "no PostgreSQL started by this state dir ($STATE) runs"
  fi
  forget_owner postgres
  left_running postgres "$PG_PORT" PostgreSQL
}

kafka_kill() {  # chaos tests: the broker dies without a clean shutdown
  local pid
  pid=$(our_kafka_pid) || { log "no Kafka started by this state dir ($STATE) runs"; exit 1; }
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$KAFKA_DIR/pid"; forget_owner kafka
  log "Kafka killed (-9)"
}

pg_restart() {  # chaos tests: every connection is cut
  [ -n "${DATABASE_URL:-}" ] && { log "DATABASE_URL is set: not restarting an external server"; exit 1; }
  [ -f "$PG_DIR/postmaster.pid" ] || { log "no PostgreSQL started by this state dir ($STATE) runs"; exit 1; }
  as_postgres "$(pg_bin)/pg_ctl" -D "$PG_DIR" -m immediate -w -t 60 restart \
    -o "$(pg_opts)" \
    >/dev/null 2>&1 || dump_log_and_fail "PostgreSQL restart" "$LOGS/postgres.log"
  record_owner postgres "$(pg_pid)" "127.0.0.1:$PG_PORT"
  log "PostgreSQL restarted"
}

# One line per server: up or down, address, version, owner.
status_line() {  # kind label port answers(0/1)
  local owner rc=0
  owner=$(owner_label "$1" "$3") || rc=$?
  if [ "$4" = 0 ]; then
    echo "$2: up, 127.0.0.1:$3, $(server_version "$1" "$3"), owner: $owner"
  elif [ "$rc" = 1 ]; then
    echo "$2: down, 127.0.0.1:$3"
  else
    echo "$2: not answering, 127.0.0.1:$3 is taken, owner: $owner"
  fi
}

stack_status() {
  local answers=1
  kafka_ready 1 && answers=0
  status_line kafka kafka "$KAFKA_PORT" "$answers"
  if [ -n "${DATABASE_URL:-}" ]; then echo "postgres: external (DATABASE_URL)"; return; fi
  answers=1
  [ -n "$(pg_bin)" ] && pg_ready && answers=0
  status_line postgres postgres "$PG_PORT" "$answers"
}

case "${1:-}" in
  up) pg_up; kafka_up ;;
  kafka-kill) kafka_kill ;;
  kafka-up) kafka_up ;;
  kafka-jars) kafka_jars ;;
  pg-restart) pg_restart ;;
  down) kafka_down; pg_down ;;
  status) stack_status ;;
  *) echo "usage: $0 up|down|status|kafka-jars|kafka-kill|kafka-up|pg-restart" >&2; exit 2 ;;
esac
