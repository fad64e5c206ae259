#!/usr/bin/env bash
# Backs up the four services' PostgreSQL schemas (intake, sla, compensation, followup): one pg_dump
# archive per schema (custom format, compressed) and a manifest, in DIR.
#
#   deploy/backup/backup.sh DIR            # DATABASE_URL (or MIGRATION_DATABASE_URL when set) to read from
#
# What a backup holds and what it does not (README, "Backup and restore"): every table of each
# schema, outbox and timers included, consistent per schema (pg_dump reads one snapshot). Kafka's
# topics are not in it: after a restore the services resume from their committed consumer offsets,
# and the inbox's processed_events make any record handled again after the backup a no-op only if it
# was handled before the backup was taken.
set -euo pipefail
dir=${1:?usage: backup.sh DIR}
url=${MIGRATION_DATABASE_URL:-${DATABASE_URL:-postgresql://helpdesk:helpdesk@127.0.0.1:55432/helpdesk}}
schemas=${HELPDESK_SCHEMAS:-"intake sla compensation followup"}
tool() {  # the newest pg_dump/pg_restore installed (PATH's, or Debian's versioned ones)
  local found; found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -n "$found" ] && [ -x "$found/$1" ]; then echo "$found/$1"; else command -v "$1" || { echo "backup: $1 not found" >&2; exit 1; }; fi
}
pg_dump=$(tool pg_dump)
mkdir -p "$dir"
: > "$dir/manifest.txt"
for schema in $schemas; do
  "$pg_dump" --dbname="$url" --schema="$schema" --format=custom --no-owner --no-privileges \
    --file="$dir/$schema.dump"
  echo "$schema $(sha256sum "$dir/$schema.dump" | cut -d' ' -f1)" >> "$dir/manifest.txt"
  echo "backup: schema $schema -> $dir/$schema.dump" >&2
done
echo "taken_at $(date -u +%Y-%m-%dT%H:%M:%SZ) by $("$pg_dump" --version)" >> "$dir/manifest.txt"
