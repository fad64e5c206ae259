#!/usr/bin/env bash
# Local real servers for development, tests and the demo:
#   Apache Kafka (single-node KRaft, jars from Maven Central) on 127.0.0.1:9092
#   PostgreSQL (Debian packages) on 127.0.0.1:55432, database "helpdesk"
# Usage: stack.sh up|down|status (tests also use kafka-jars, kafka-kill, kafka-up, pg-restart)
# Idempotent: `up` reuses servers that already answer. State and logs live in .stack/ (git-ignored).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STATE="${HELPDESK_STACK_DIR:-$ROOT/.stack}"
LOGS="$STATE/logs"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
PG_PORT="${PG_PORT:-55432}"
KAFKA_LIBS="$STATE/kafka-libs"
KAFKA_DIR="$STATE/kafka"
PG_DIR="$STATE/pg"
mkdir -p "$LOGS"

log() { printf '[stack] %s\n' "$*" >&2; }

dump_log_and_fail() {
  log "$1 failed to start; last lines of $2:"
  tail -n 60 "$2" >&2 || true
  exit 1
}

# ---------- Kafka ----------
kafka_ready() {
  "$PY" "$ROOT/deploy/local/wait_kafka.py" "127.0.0.1:$KAFKA_PORT" "${1:-1}" >/dev/null 2>&1
}

kafka_jars() {
  if ! ls "$KAFKA_LIBS"/kafka_2.13-*.jar >/dev/null 2>&1; then
    log "resolving Kafka jars from Maven Central (cached in $KAFKA_LIBS)"
    mvn -q -B -f "$ROOT/deploy/local/kafka/pom.xml" dependency:copy-dependencies \
      -DoutputDirectory="$KAFKA_LIBS" >"$LOGS/mvn.log" 2>&1 || dump_log_and_fail "mvn" "$LOGS/mvn.log"
  fi
}

kafka_up() {
  if kafka_ready 1; then log "Kafka already answers on 127.0.0.1:$KAFKA_PORT"; return; fi
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
  log "starting Kafka on 127.0.0.1:$KAFKA_PORT"
  nohup java -Xms256m -Xmx512m -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j.configuration="file:$ROOT/deploy/local/kafka/log4j.properties" \
    -cp "$cp" kafka.Kafka "$props" >"$LOGS/kafka.log" 2>&1 &
  echo $! >"$KAFKA_DIR/pid"
  kafka_ready 240 || dump_log_and_fail "Kafka" "$LOGS/kafka.log"  # after an unclean stop it recovers every log first
  log "Kafka $(kafka_version) ready"
}

kafka_version() { ls "$KAFKA_LIBS"/kafka_2.13-*.jar 2>/dev/null | sed -E 's/.*kafka_2.13-(.*)\.jar/\1/' | head -n 1; }

kafka_down() {
  if [ -f "$KAFKA_DIR/pid" ]; then
    local pid; pid=$(cat "$KAFKA_DIR/pid")
    if kill -0 "$pid" 2>/dev/null; then
      log "stopping Kafka (pid $pid)"
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$KAFKA_DIR/pid"
  fi
}

# ---------- PostgreSQL ----------
pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

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

pg_up() {
  if [ -n "${DATABASE_URL:-}" ]; then log "DATABASE_URL is set: using it, starting no PostgreSQL"; return; fi
  pg_install
  local bin; bin=$(pg_bin)
  if pg_ready; then log "PostgreSQL already answers on 127.0.0.1:$PG_PORT"; return; fi
  if [ ! -f "$PG_DIR/PG_VERSION" ]; then
    mkdir -p "$PG_DIR"
    [ "$(id -u)" = "0" ] && chown postgres:postgres "$PG_DIR"
    chmod 700 "$PG_DIR"
    as_postgres "$bin/initdb" -D "$PG_DIR" -U postgres --auth=trust -E UTF8 >"$LOGS/pg-initdb.log" 2>&1 \
      || dump_log_and_fail "initdb" "$LOGS/pg-initdb.log"
  fi
  touch "$LOGS/postgres.log"; [ "$(id -u)" = "0" ] && chown postgres "$LOGS/postgres.log"
  log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
  as_postgres "$bin/pg_ctl" -D "$PG_DIR" -l "$LOGS/postgres.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k /tmp -c max_connections=300" \
    start >/dev/null 2>&1 || dump_log_and_fail "PostgreSQL" "$LOGS/postgres.log"
  "$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -tAc "SELECT 1 FROM pg_roles WHERE rolname='helpdesk'" | grep -q 1 \
    || "$bin/psql" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -c "CREATE ROLE helpdesk LOGIN PASSWORD 'helpdesk' CREATEDB"
  "$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='helpdesk'" | grep -q 1 \
    || "$bin/psql" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -c "CREATE DATABASE helpdesk OWNER helpdesk"
  log "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') ready"
}

pg_down() {
  [ -n "${DATABASE_URL:-}" ] && return
  local bin; bin=$(pg_bin)
  [ -n "$bin" ] && [ -f "$PG_DIR/postmaster.pid" ] || return 0
  log "stopping PostgreSQL"
  as_postgres "$bin/pg_ctl" -D "$PG_DIR" -m fast -w stop >/dev/null 2>&1 || true
}

kafka_kill() {  # chaos tests: the broker dies without a clean shutdown
  [ -f "$KAFKA_DIR/pid" ] || { log "no Kafka started by this stack"; exit 1; }
  kill -9 "$(cat "$KAFKA_DIR/pid")" 2>/dev/null || true
  rm -f "$KAFKA_DIR/pid"
  log "Kafka killed (-9)"
}

pg_restart() {  # chaos tests: every connection is cut
  [ -n "${DATABASE_URL:-}" ] && { log "DATABASE_URL is set: not restarting an external server"; exit 1; }
  as_postgres "$(pg_bin)/pg_ctl" -D "$PG_DIR" -m immediate -w -t 60 restart \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k /tmp -c max_connections=300" \
    >/dev/null 2>&1 || dump_log_and_fail "PostgreSQL restart" "$LOGS/postgres.log"
  log "PostgreSQL restarted"
}

case "${1:-}" in
  up) pg_up; kafka_up ;;
  kafka-kill) kafka_kill ;;
  kafka-up) kafka_up ;;
  kafka-jars) kafka_jars ;;
  pg-restart) pg_restart ;;
  down) kafka_down; pg_down ;;
  status)
    if kafka_ready 1; then echo "kafka: up (127.0.0.1:$KAFKA_PORT, $(kafka_version))"; else echo "kafka: down"; fi
    if [ -n "${DATABASE_URL:-}" ]; then echo "postgres: external (DATABASE_URL)";
    elif [ -n "$(pg_bin)" ] && pg_ready; then echo "postgres: up (127.0.0.1:$PG_PORT)"; else echo "postgres: down"; fi ;;
  *) echo "usage: $0 up|down|status|kafka-jars|kafka-kill|kafka-up|pg-restart" >&2; exit 2 ;;
esac
